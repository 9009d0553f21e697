/*
 * plugins/ykc/ykc.h: the YKC plugin's shared state and the functions its files give each other.
 *
 * The plugin (ykc.so) is split along its seams; each file says its own contract:
 *   plugin.c    descriptor, configuration, init/cleanup/reload, small helpers every file uses
 *   conn.c      connections, login (0x01/0x02), presence (online/offline/seen), heartbeats,
 *               the pile map and the per-connection storage-call slots, sending frames
 *   tariff.c    the billing model: tariff from storage, 0x05/0x06, 0x09/0x0A, 0x58 pushes
 *   handlers.c  frame dispatch and the handlers of the pile's own frames (0x13, BMS/faults,
 *               0x33/0xA3 and the other answers to commands)
 *   sessions.c  charging sessions on the core's neutral model: 0x31/0xA1 starts (authorise,
 *               PIN check, open), 0x3B records (close with the evidence row in ykc_records)
 *   commands.c  commands from the core (a table: name -> frame builder), pending answers
 *
 * One struct ykc per loaded plugin, one struct sess per connection. Everything runs on the
 * core's loop thread. The module is built with -fvisibility=hidden, so these names are the
 * module's own and never meet the daemon's symbols.
 */
#ifndef EVCS_YKC_PLUGIN_H
#define EVCS_YKC_PLUGIN_H

#include <evcs/plugin.h>

#include "codec.h"

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#define MAX_LISTENERS 8
#define MAX_PCMD 8   /* commands in flight per connection (more: EVCS_EBUSY) */
#define MAX_REQ 8    /* storage calls awaiting an answer to the pile, per connection */
#define MAX_GUNS 99
#define PILE_BUCKETS 65536u
#define FAILED_SLOTS 1024u

struct ykc;
struct sess;
struct record_job;

struct lst {
	struct ykc *y;
	evcs_listener_t *l;
	enum evcs_ykc_proto proto;
};

struct gun {
	uint8_t status;      /* last 0x13 status; 0xFF = not reported yet */
	uint8_t plugged, returned;
	uint16_t fault;
	uint8_t idle_in_order; /* consecutive idle 0x13 while an order is open (§1.5) */
	uint8_t stopping;      /* 0x36 sent for the open order */
	uint8_t started;       /* SESSION_STARTED published for the open order */
	char trade_no[33];     /* the open order on this gun, "" when none */
	int64_t session_id;
	char late_trade[33];   /* a start answered "not plugged": a success may follow (§1.4) */
	int64_t late_session;
	int64_t late_until_ms;
	time_t counter_sec;    /* trade-number counter: per gun, per second (§3.1) */
	unsigned counter;
};

enum pcmd_state { PC_FREE = 0, PC_PREP, PC_SENT };
enum pcmd_kind { PK_GENERIC = 0, PK_START, PK_STOP, PK_TARIFF };

struct pcmd {
	int state;
	int kind;
	struct sess *s;
	evcs_cmd_t *cmd;     /* NULL for the plugin's own requests (tariff push) */
	uint8_t req_type;    /* frame sent */
	uint8_t answer;      /* expected answer type */
	uint8_t seq[2];
	int gun;
	char trade_no[33];
	char parallel_no[13];
	int64_t session_id;
	uint32_t balance;    /* 0.01 yuan (wire) */
	char logical[17];
	uint8_t pcard[8];
	evcs_timer_t *timer;
};

/* A core call whose result is answered to the pile (login, 0x31/0xA1, 0x3B). */
struct req {
	int used;
	struct sess *s;
	uint8_t type;
	uint8_t seq[2];
	int gun;
	char trade_no[33];
	char parallel_no[13];
	uint8_t start_mode;   /* 0x31: 1 card, 3 VIN */
	uint8_t need_password;
	uint8_t password[16]; /* 0x31 password_md5 as sent (§3.7) */
	uint8_t pcard[8];
	char vin[18];
	char logical[17];
	int64_t balance;
	int64_t card_id, driver_id;
	struct record_job *job; /* 0x3B: the record in flight (sessions.c); freed by req_put */
};

enum sess_state { S_NEW = 0, S_LOGIN_PENDING, S_ONLINE };

struct sess {
	struct ykc *y;
	struct lst *lst;
	evcs_conn_t *c;
	int state;
	int closed;
	int refs;
	enum evcs_ykc_proto proto;
	enum evcs_ykc_crc_order crc;
	uint16_t counter;
	char peer[64];
	char pile[15];
	uint8_t pile_bcd[7];
	int64_t tenant, pile_id, station_id;
	uint8_t announced;
	int ngun;
	struct gun *guns;
	int have_tariff;
	struct evcs_ykc_tariff tariff; /* wire form, pile field set at send time (the core takes
					* the session's tariff snapshot itself at session open) */
	char pile_model[5];            /* model the pile reported (0x05) or accepted (0x57) */
	int push_pending;              /* a 0x58 waits for the pile to be idle */
	int tariff_fetching;
	uint8_t pending_0a_seq[2];
	int pending_0a;
	int64_t last_seen_store_ms;
	int64_t partial_since_ms;
	uint64_t skipped;
	unsigned prelogin_logged, enc_logged;
	uint8_t meter_warned; /* a meter reading was not queued (logged once) */
	uint32_t warned_unknown[8], warned_body[8], warned_pile[8];
	evcs_timer_t *login_timer, *sync_timer;
	struct pcmd pcmd[MAX_PCMD];
	struct req req[MAX_REQ];
	struct sess *hnext; /* pile map chain */
	struct sess *next, *prev; /* every session not yet freed (unload frees them) */
};

struct failed {
	char addr[48];
	int64_t minute;
	unsigned count;
};

struct ykc {
	evcs_plugin_t *p;
	struct lst lst[MAX_LISTENERS];
	int nlst;
	long long offline_after_ms, login_timeout_ms, max_conns_per_addr, max_failed_per_min,
	    start_timeout_ms, command_timeout_ms, sync_interval_ms, seen_interval_ms,
	    partial_timeout_ms, utc_offset_min, max_conns;
	int nack_short_record, len_compat;
	int utc_offset_fixed; /* utc_offset_min configured: it wins over the tenant's zone */
	struct evcs_ykc_tolerance tol;
	struct sess **map; /* pile serial -> the connection that holds it */
	struct failed failed[FAILED_SLOTS];
	evcs_sub_t *tariff_sub;
	struct sess *all;
	uint8_t out[EVCS_YKC_MAX_FRAME + 8];
	char jbuf[8192];
	evcs_metric_t *m_frames[256][3];
	evcs_metric_t *m_skipped, *m_login_ok, *m_login_refused, *m_rec_stored, *m_rec_dup,
	    *m_rec_unacked, *m_online, *m_frames_out;
	int64_t online;
};

enum { OUT_OK = 0, OUT_DROPPED = 1, OUT_BAD = 2 };

/* the core's API table (set by init) */
extern const evcs_api_t *api;

#define LOG(s, lvl, ...) api->log((s)->y->p, (lvl), (s)->tenant, (s)->pile[0] ? (s)->pile : NULL, __VA_ARGS__)

/* ---- plugin.c: small helpers ------------------------------------------------------------------ */
int64_t now_ms(void);
/* set bit t in the bitmap; 1 when it was already set (warn-once bookkeeping) */
int bit_test_set(uint32_t *bm, uint8_t t);
void hex_of(const uint8_t *b, size_t n, char *out); /* upper-case hex, NUL-terminated */
int hex_to(const char *s, uint8_t *b, size_t n);    /* exactly 2n hex digits, else -1 */
int all_zero(const char *s);
/* JSON string body for untrusted text (quotes, controls escaped; non-ASCII replaced) */
const char *jesc(char *dst, size_t cap, const char *src);
/* the chargers' wall clock: utc_offset_min when configured, else the tenant's zone */
void local_tm(const struct sess *s, time_t t, struct tm *tm);
int64_t cp56_to_ms(const struct sess *s, const struct evcs_ykc_cp56 *c);
const char *proto_name(enum evcs_ykc_proto p);
void gun_str(char out[3], int g); /* two digits of a gun number */
int gun_no(const char *g);        /* 0 when not two digits */
const char *stop_reason_text(unsigned r);
void count_frame(struct ykc *y, uint8_t type, int outcome);
/* fire-and-forget storage call with arguments printed into the shared buffer */
void store_fmt(struct sess *s, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int publish(struct sess *s, uint32_t type, int gun, const evcs_field_t *f, size_t n);

/* ---- conn.c: connections, login, presence, sending -------------------------------------------- */
void sess_unref(struct sess *s);
/* a slot for a storage call whose answer goes to the pile (takes a session reference) */
struct req *req_get(struct sess *s, uint8_t type, const uint8_t seq[2]);
void req_put(struct req *r);
/* seq NULL: platform-originated (per-connection counter); used_seq gets the bytes sent */
int send_msg(struct sess *s, const struct evcs_ykc_msg *m, const uint8_t *seq, uint8_t used_seq[2]);
void msg_init(struct evcs_ykc_msg *m, uint8_t type);
void send_time_sync(struct sess *s, uint8_t used_seq[2]);
void on_login(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_login *l);
void on_heartbeat(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_heartbeat *h);
int on_accept(evcs_conn_t *c, void *ud);
void on_read(evcs_conn_t *c, void *ud);
void on_close(evcs_conn_t *c, const char *reason, void *ud);

/* ---- tariff.c: the billing model -------------------------------------------------------------- */
/* storage tariff JSON (plugins/STORAGE.md) -> s->tariff (wire form) */
int tariff_load(struct sess *s, json_t *t);
int pile_idle(const struct sess *s);
/* 0x58 when one is pending and the pile is idle */
void maybe_push_tariff(struct sess *s);
int on_tariff_changed(const evcs_event_t *ev, void *ud);
void on_model_verify(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_model_verify *v);
void on_model_request(struct sess *s, const struct evcs_ykc_frame *f);

/* ---- handlers.c: frames from the pile --------------------------------------------------------- */
void handle_frame(struct sess *s, const struct evcs_ykc_frame *f);

/* ---- sessions.c: charging sessions on the core's neutral model ------------------------------- */
/* a new trade number for gun gn (§3.1); -1 when this second's counter is exhausted */
int next_trade(struct sess *s, int gn, char out[33]);
/* forget the gun's open order */
void gun_close_order(struct gun *g);
void on_start_request(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_start_request *q);
void on_record(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_record *rec);
void on_short_record(struct sess *s, const struct evcs_ykc_frame *f);

/* ---- commands.c: commands from the core, pending answers ------------------------------------ */
struct pcmd *pcmd_get(struct sess *s);
void pcmd_release(struct pcmd *pc);
void pcmd_arm(struct pcmd *pc, long long ms);
/* §1.3: match by the sequence bytes (either order), then by (answer type, gun, trade_no) */
struct pcmd *pcmd_match(struct sess *s, const struct evcs_ykc_frame *f, int gun, const char *trade);
void cmd_reply_json(evcs_cmd_t *cmd, int status, json_t *o); /* consumes o */
void cmd_fail(evcs_cmd_t *cmd, int status, const char *msg);
/* the pile's answer as {"frame":"0xNN","name":..,"fields":{..}} */
json_t *answer_json(const struct evcs_ykc_msg *m, uint8_t type, enum evcs_ykc_proto proto);
int on_command(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud);

#endif
