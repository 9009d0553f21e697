/*
 * session_internal.h: what the two halves of the protocol-neutral session model share
 * (session.c: state, authorisation, open, meter readings, module hooks; session_close.c: the
 * close pipeline with group commit). Internal to the core; loop thread only. The contract
 * is in <evcs/plugin.h> ("charging sessions") and at the top of session.c.
 */
#ifndef EVCS_SESSION_INTERNAL_H
#define EVCS_SESSION_INTERNAL_H

#include "billing.h"
#include "core.h"
#include "db.h"
#include "strmap.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMP "session"
#define GROUP_MAX 64         /* closes per group transaction */
#define OPEN_CACHE_MAX 200000 /* open sessions kept in memory (beyond: read back at close) */
#define READINGS_MAX 96       /* meter readings kept per open session (decimated beyond) */

/* ---- state ----------------------------------------------------------------------------- */

struct open_sess {
	int64_t session_id;
	int has_tariff;
	evcs_tariff_pick_t tariff;
	size_t nreadings;
	evcs_meter_sample_t readings[READINGS_MAX]; /* ts in unix seconds, kwh so far */
};

struct sop; /* an operation in flight */

struct sess_state {
	evcs_core_t *core;
	evcs_strmap_t *open; /* "pile_id:trade_no" -> struct open_sess */
	evcs_db_batch_t *samples;
	struct event *flush_ev;
	struct sop *ready_head, *ready_tail; /* closes waiting for a write slot */
	size_t nready;
	int groups_in_flight;
	size_t live; /* operations whose database callback is still due */
	int closing; /* evcs_session_free ran: free when live reaches 0 */
	struct sop *ops; /* every operation in flight (for drop_owner) */
};

enum sop_kind { SOP_AUTH = 1, SOP_OPEN, SOP_CLOSE, SOP_METER };
enum close_mode { CM_UPDATE = 1, CM_INSERT };

struct sop {
	struct sop *prev, *next; /* st->ops */
	struct sop *rnext;       /* ready queue / group */
	struct sess_state *st;
	evcs_plugin_t *p; /* NULL once the plugin unloaded: answer dropped */
	char source[33];
	int kind;
	evcs_session_done done;
	evcs_auth_done auth_done;
	void *ud;
	int64_t tenant, pile_id;
	int gun;
	char pile[EVCS_ID_MAX + 1], trade[EVCS_ID_MAX + 1];
	char key[EVCS_ID_MAX + 24];
	int attempt;
	int rereads; /* read again after a lost race (bounded) */
	/* authorize */
	int id_kind;
	int64_t min_balance;
	/* open */
	evcs_session_open_t o;
	char start_mode[16];
	char *id_token, *partner_seq;
	evcs_tariff_pick_t tariff;
	/* meter */
	evcs_meter_reading_t m;
	/* close */
	evcs_session_close_t c;
	char *stop_text, *digest, *evidence_sql;
	evcs_db_param_t *evidence;
	size_t nevidence;
	int mode;           /* enum close_mode */
	int pending_state;  /* the row is 'pending': move it to 'starting' first */
	int64_t session_id, station_id, connector_id, alarm_id;
	evcs_priced_t priced;
	int mismatch;
	int solo;          /* retried alone after its group failed */
	int evidence_merged; /* its evidence row goes in the group's multi-row evidence statement */
	int row_snapshot;    /* the session row already holds the tariff snapshot */
	size_t base, idx_session, idx_alarm; /* statement numbers inside the group transaction */
	int has_alarm;
};

static inline int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t cell_i64(const evcs_db_result_t *r, size_t row, unsigned col, int64_t def)
{
	int64_t v;
	return evcs_db_cell_i64(r, row, col, &v) == 0 ? v : def;
}

static inline int valid_identity(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n < 1 || n > EVCS_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static const char *const start_modes[] __attribute__((unused)) = {"app", "card", "offline_card", "vin", "operator",
					  "partner", NULL};
static inline int valid_start_mode(const char *m)
{
	for (int i = 0; m && start_modes[i]; i++)
		if (strcmp(m, start_modes[i]) == 0)
			return 1;
	return 0;
}

void sess_flush_cb(evutil_socket_t fd, short what, void *ud);

/* the pile's station, identity, assigned tariff and the gun's connector (a plain consistent
 * read: the writes then take no shared locks on the connector row); values: gun, pile id */
#define PILE_TARIFF_READ                                                                          \
	"SELECT p.station_id, p.serial, " TARIFF_COLS ", (SELECT c.id FROM connectors c WHERE "      \
	"c.tenant_id = p.tenant_id AND c.pile_id = p.id AND c.gun_no = ?) FROM piles p LEFT JOIN "   \
	"tariffs t ON t.tenant_id = p.tenant_id AND t.id = p.tariff_id WHERE p.tenant_id = ? AND "   \
	"p.id = ?"
#define PILE_CONNECTOR_COL (2 + TARIFF_NCOLS)
#define ACTIVE_TARIFF_READ                                                                        \
	"SELECT " TARIFF_COLS " FROM tariffs t WHERE t.tenant_id = ? AND t.state = 'active' "        \
	"ORDER BY t.id DESC LIMIT 1"

/* session.c */
struct sess_state *sess_state_of(evcs_core_t *core);
struct sop *sess_op_new(struct sess_state *st, evcs_plugin_t *p, int kind);
void sess_op_free(struct sop *o);
void sess_key(char *buf, size_t cap, int64_t pile_id, const char *trade);
void sess_pick_for_pile(evcs_core_t *core, int64_t tenant, const evcs_db_result_t *pile_row,
			const evcs_db_result_t *active_row, evcs_tariff_pick_t *out);
void sess_answer(struct sop *o, int status, const evcs_session_result_t *r);
void sess_fail_answer(struct sop *o, int st, const char *what, const char *errmsg);
/* session_close.c */
void sess_flush_cb(evutil_socket_t fd, short what, void *ud);
int sess_api_close(evcs_plugin_t *p, const evcs_session_close_t *c, evcs_session_done done,
		   void *ud);

#endif
