/*
 * plugins/ykc/plugin.c: the YKC (云快充) 1.5/1.6 charger protocol plugin (ykc.so).
 *
 * Role: listens on one or more TCP ports, each with its protocol version ("listen =
 * 0.0.0.0:8767/1.5, 0.0.0.0:8768/1.6"), runs the session rules of shared/docs/ykc.md §1 for
 * every pile connection, and turns frames into storage operations (api->store, see
 * plugins/STORAGE.md), hook-bus events and answers. It claims each pile that logs in so
 * operator/partner commands ("start", "stop", "set_tariff", ...) reach it (on_command).
 * It uses only the API table of <evcs/plugin.h> and the codec (codec.h).
 *
 * Threading: everything runs on the core's loop thread.
 * Memory: one struct sess per connection, allocated at accept and freed when the connection
 * is gone and no storage callback still refers to it (refs). The frame path does not
 * allocate: frames are scanned in place in the connection's evbuffer (pulled up to at most two
 * frames' worth), decoded into stack structs, answered from a shared output buffer, and
 * storage arguments are printed into a shared buffer that the core parses before returning.
 * Exceptions, all off the per-frame hot path: login/authorisation/record results (parsed
 * JSON), commands, and the JSON of BMS/fault frames handed to event.store.
 * Durability: a transaction record (0x3B) is acknowledged with 0x40 only after txn.record
 * returned OK (committed). When the database is unavailable no 0x40 is sent: the pile resends.
 */
#include <evcs/plugin.h>

#include "codec.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PLUGIN_VERSION "1.0"
#define MAX_LISTENERS 8
#define MAX_PCMD 8   /* commands in flight per connection (more: EVCS_EBUSY) */
#define MAX_REQ 8    /* storage calls awaiting an answer to the pile, per connection */
#define MAX_GUNS 99
#define PILE_BUCKETS 65536u
#define FAILED_SLOTS 1024u

static const evcs_api_t *api;

struct ykc;
struct sess;

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

/* A storage call whose result is answered to the pile (login, 0x31/0xA1, 0x3B, 0x09). */
struct req {
	int used;
	struct sess *s;
	uint8_t type;
	uint8_t seq[2];
	uint8_t stage;        /* 0x31: 0 authorise, 1 create */
	int gun;
	char trade_no[33];
	char parallel_no[13];
	uint8_t start_mode;
	uint8_t pcard[8];
	char vin[18];
	char logical[17];
	int64_t balance;
	int64_t card_id, driver_id;
	int64_t total_kwh;
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
	struct evcs_ykc_tariff tariff; /* wire form, pile field set at send time */
	char *tariff_json;             /* storage form, the snapshot given to session.create;
					* on the heap: most of a connection's life it is not needed
					* at this size, and per-connection memory is the scale limit */
	char pile_model[5];            /* model the pile reported (0x05) or accepted (0x57) */
	int push_pending;              /* a 0x58 waits for the pile to be idle */
	int tariff_fetching;
	uint8_t pending_0a_seq[2];
	int pending_0a;
	int64_t last_seen_store_ms;
	int64_t partial_since_ms;
	uint64_t skipped;
	unsigned prelogin_logged, enc_logged;
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

/* ---- small helpers ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define LOG(s, lvl, ...) api->log((s)->y->p, (lvl), (s)->tenant, (s)->pile[0] ? (s)->pile : NULL, __VA_ARGS__)

static int bit_test_set(uint32_t *bm, uint8_t t)
{
	uint32_t m = 1u << (t & 31);
	int was = (bm[t >> 5] & m) != 0;
	bm[t >> 5] |= m;
	return was;
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
	static const char hx[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = 0;
}

static int hex_to(const char *s, uint8_t *b, size_t n)
{
	if (!s || strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
						: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (v < 0)
			return -1;
		if (i & 1)
			b[i / 2] |= (uint8_t)v;
		else
			b[i / 2] = (uint8_t)(v << 4);
	}
	return 0;
}

static int all_zero(const char *s)
{
	return s && strspn(s, "0") == strlen(s);
}

/* JSON string body for untrusted text: quotes, backslashes and controls escaped, non-ASCII
 * bytes replaced (pile ASCII fields may carry anything). */
static const char *jesc(char *dst, size_t cap, const char *src)
{
	size_t o = 0;
	for (; src && *src && o + 7 < cap; src++) {
		unsigned char ch = (unsigned char)*src;
		if (ch == '"' || ch == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", ch);
		} else if (ch >= 0x7F) {
			dst[o++] = '?';
		} else {
			dst[o++] = (char)ch;
		}
	}
	dst[o] = 0;
	return dst;
}

/* Local wall-clock time of the chargers (CP56Time2a has no zone, §3.3). */
static void local_tm(const struct ykc *y, time_t t, struct tm *tm)
{
	time_t l = t + (time_t)y->utc_offset_min * 60;
	gmtime_r(&l, tm);
}

static int64_t cp56_to_ms(const struct ykc *y, const struct evcs_ykc_cp56 *c)
{
	if (c->year == 0 && c->month == 0 && c->mday == 0)
		return 0;
	struct tm tm;
	unsigned ms;
	evcs_ykc_cp56_to_tm(c, &tm, &ms);
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1)
		return 0;
	time_t t = timegm(&tm);
	return ((int64_t)t - (int64_t)y->utc_offset_min * 60) * 1000 + ms % 1000;
}

static const char *proto_name(enum evcs_ykc_proto p) { return p == EVCS_YKC_PROTO_16 ? "1.6" : "1.5"; }

/* Two BCD digits of a gun number (1..99). */
static void gun_str(char out[3], int g)
{
	out[0] = (char)('0' + (g / 10) % 10);
	out[1] = (char)('0' + g % 10);
	out[2] = 0;
}

static int gun_no(const char *g)
{
	if (!g || g[0] < '0' || g[0] > '9' || g[1] < '0' || g[1] > '9')
		return 0;
	return (g[0] - '0') * 10 + (g[1] - '0');
}

static const char *stop_reason_text(unsigned r)
{
	static const char *const normal[] = {"app remote stop", "SOC reached 100%", "energy target reached",
					     "amount target reached", "time target reached", "manual stop"};
	if (r == 0)
		return "unspecified";
	if (r >= 0x40 && r <= 0x45)
		return normal[r - 0x40];
	if (r >= 0x46 && r <= 0x49)
		return "normal end";
	if (r >= 0x4A && r <= 0x69)
		return "start failed";
	if (r >= 0x6A && r <= 0x8F)
		return "abnormal stop";
	if (r == 0x90)
		return "unknown reason";
	return "not in the stop-reason table";
}

/* ---- metrics -------------------------------------------------------------------------------- */

static void count_frame(struct ykc *y, uint8_t type, int outcome)
{
	evcs_metric_t **m = &y->m_frames[type][outcome];
	if (!*m) {
		static const char *const on[] = {"ok", "dropped", "bad"};
		char name[96];
		snprintf(name, sizeof name, "evcs_ykc_frames_in_total{type=\"0x%02X\",outcome=\"%s\"}", type,
			 on[outcome]);
		*m = api->metric_new(y->p, name, "YKC frames received, by type and outcome",
				     EVCS_METRIC_COUNTER);
	}
	api->metric_add(*m, 1);
}

/* ---- pile map ------------------------------------------------------------------------------- */

static unsigned pile_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h & (PILE_BUCKETS - 1);
}

static struct sess *map_get(struct ykc *y, const char *pile)
{
	for (struct sess *s = y->map[pile_hash(pile)]; s; s = s->hnext)
		if (strcmp(s->pile, pile) == 0)
			return s;
	return NULL;
}

static void map_put(struct ykc *y, struct sess *s)
{
	unsigned h = pile_hash(s->pile);
	s->hnext = y->map[h];
	y->map[h] = s;
}

static int map_del(struct ykc *y, struct sess *s)
{
	for (struct sess **pp = &y->map[pile_hash(s->pile)]; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			s->hnext = NULL;
			return 1;
		}
	return 0;
}

/* ---- failed-login rate limit per source address ------------------------------------------- */

static struct failed *failed_slot(struct ykc *y, const char *addr, int create)
{
	unsigned h = pile_hash(addr) & (FAILED_SLOTS - 1);
	int64_t minute = now_ms() / 60000;
	struct failed *victim = NULL;
	for (unsigned i = 0; i < 8; i++) {
		struct failed *f = &y->failed[(h + i) & (FAILED_SLOTS - 1)];
		if (f->addr[0] && strcmp(f->addr, addr) == 0) {
			if (f->minute != minute) {
				f->minute = minute;
				f->count = 0;
			}
			return f;
		}
		if (!victim || !f->addr[0] || f->minute < victim->minute)
			victim = f;
	}
	if (!create)
		return NULL;
	snprintf(victim->addr, sizeof victim->addr, "%s", addr);
	victim->minute = minute;
	victim->count = 0;
	return victim;
}

static int login_blocked(struct ykc *y, const char *addr)
{
	if (y->max_failed_per_min <= 0)
		return 0;
	struct failed *f = failed_slot(y, addr, 0);
	return f && f->count >= (unsigned)y->max_failed_per_min;
}

/* ---- session lifetime ------------------------------------------------------------------------ */

static void sess_unref(struct sess *s)
{
	if (--s->refs > 0)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		s->y->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s->guns);
	free(s->tariff_json);
	free(s);
}

static struct req *req_get(struct sess *s, uint8_t type, const uint8_t seq[2])
{
	for (int i = 0; i < MAX_REQ; i++)
		if (!s->req[i].used) {
			struct req *r = &s->req[i];
			memset(r, 0, sizeof *r);
			r->used = 1;
			r->s = s;
			r->type = type;
			if (seq)
				memcpy(r->seq, seq, 2);
			s->refs++;
			return r;
		}
	LOG(s, EVCS_LOG_WARNING, "too many frames awaiting storage; 0x%02X dropped (the pile retries)", type);
	return NULL;
}

static void req_put(struct req *r)
{
	struct sess *s = r->s;
	r->used = 0;
	sess_unref(s);
}

/* ---- sending ----------------------------------------------------------------------------------- */

/* Encode m and write it. seq NULL: a platform-originated frame (per-connection counter, §2.2);
 * otherwise the request's two bytes verbatim. The CRC order is the pile's latest (§2.4). */
static int send_msg(struct sess *s, const struct evcs_ykc_msg *m, const uint8_t *seq, uint8_t used_seq[2])
{
	if (s->closed)
		return EVCS_EOFFLINE;
	uint8_t sq[2];
	if (seq)
		memcpy(sq, seq, 2);
	else
		evcs_ykc_seq_from_counter(s->counter++, sq);
	const char *bad = NULL;
	int n = evcs_ykc_encode_frame(m, sq, s->crc, s->y->out, sizeof s->y->out, &bad);
	if (n < 0) {
		LOG(s, EVCS_LOG_ERR, "cannot encode 0x%02X: field %s (%d)", m->type, bad ? bad : "?", n);
		return EVCS_EINVAL;
	}
	if (used_seq)
		memcpy(used_seq, sq, 2);
	api->metric_add(s->y->m_frames_out, 1);
	return api->conn_write(s->c, s->y->out, (size_t)n);
}

static void msg_init(struct evcs_ykc_msg *m, uint8_t type)
{
	memset(m, 0, sizeof *m);
	m->type = type;
}

static void send_login_reply(struct sess *s, const char *pile, const uint8_t seq[2], int result)
{
	struct evcs_ykc_msg m;
	msg_init(&m, 0x02);
	snprintf(m.u.pile_result.pile, sizeof m.u.pile_result.pile, "%s", pile);
	m.u.pile_result.result = (uint8_t)result;
	send_msg(s, &m, seq, NULL);
}

static void send_time_sync(struct sess *s, uint8_t used_seq[2])
{
	struct evcs_ykc_msg m;
	msg_init(&m, 0x56);
	snprintf(m.u.time_sync.pile, sizeof m.u.time_sync.pile, "%s", s->pile);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	local_tm(s->y, ts.tv_sec, &tm);
	evcs_ykc_cp56_from_tm(&tm, (unsigned)(ts.tv_nsec / 1000000), &m.u.time_sync.time);
	send_msg(s, &m, NULL, used_seq);
}

static void send_tariff(struct sess *s, uint8_t type, const uint8_t *seq, uint8_t used_seq[2])
{
	struct evcs_ykc_msg m;
	msg_init(&m, type);
	m.u.tariff = s->tariff;
	snprintf(m.u.tariff.pile, sizeof m.u.tariff.pile, "%s", s->pile);
	send_msg(s, &m, seq, used_seq);
}

/* ---- storage helpers --------------------------------------------------------------------------- */

static void store_logged(int status, const char *result, void *ud)
{
	struct ykc *y = ud;
	if (status != EVCS_OK)
		api->log(y->p, status == EVCS_EUNAVAIL ? EVCS_LOG_INFO : EVCS_LOG_WARNING, 0, NULL,
			 "storage operation failed (%s): %s", api->status_name(status), result ? result : "");
}

/* Fire-and-forget storage call with args printed into the shared buffer. */
static void store_fmt(struct sess *s, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void store_fmt(struct sess *s, const char *op, const char *fmt, ...)
{
	struct ykc *y = s->y;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(y->jbuf, sizeof y->jbuf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof y->jbuf) {
		LOG(s, EVCS_LOG_ERR, "%s: arguments too long", op);
		return;
	}
	api->store(y->p, op, y->jbuf, store_logged, y);
}

static int publish(struct sess *s, uint32_t type, int gun, const evcs_field_t *f, size_t n)
{
	evcs_event_t ev = {.size = sizeof ev, .type = type, .tenant_id = s->tenant,
			   .pile = s->pile[0] ? s->pile : NULL, .gun = gun, .fields = f, .nfields = n};
	return api->bus_publish(s->y->p, &ev);
}

/* ---- tariffs --------------------------------------------------------------------------------- */

/* Storage tariff JSON (plugins/STORAGE.md) -> wire struct; keeps the JSON as the snapshot. */
static int tariff_load(struct sess *s, json_t *t)
{
	static const char *const pn[4] = {"sharp", "peak", "flat", "valley"};
	struct evcs_ykc_tariff w;
	memset(&w, 0, sizeof w);
	const char *model = json_string_value(json_object_get(t, "model"));
	json_t *sl = json_object_get(t, "slots");
	if (!model || strlen(model) != 4 || !json_is_array(sl) || json_array_size(sl) != 48)
		return -1;
	memcpy(w.model, model, 5);
	uint32_t *rates[8] = {&w.sharp_elec_rate, &w.sharp_service_rate, &w.peak_elec_rate,
			      &w.peak_service_rate, &w.flat_elec_rate, &w.flat_service_rate,
			      &w.valley_elec_rate, &w.valley_service_rate};
	for (int p = 0; p < 4; p++) {
		char k[32];
		snprintf(k, sizeof k, "%s_elec_rate", pn[p]);
		if (evcs_ykc_rate_from_money(json_integer_value(json_object_get(t, k)), rates[2 * p]) < 0)
			return -1;
		snprintf(k, sizeof k, "%s_service_rate", pn[p]);
		if (evcs_ykc_rate_from_money(json_integer_value(json_object_get(t, k)), rates[2 * p + 1]) < 0)
			return -1;
	}
	for (int i = 0; i < 48; i++)
		w.slots[i] = (uint8_t)(json_integer_value(json_array_get(sl, (size_t)i)) & 3);
	char *js = json_dumps(t, JSON_COMPACT);
	if (!js || strlen(js) > 4096) {
		free(js);
		return -1;
	}
	free(s->tariff_json);
	s->tariff_json = js;
	s->tariff = w;
	s->have_tariff = 1;
	return 0;
}

static int pile_idle(const struct sess *s)
{
	for (int g = 0; g < s->ngun; g++)
		if (s->guns[g].status == 3 || s->guns[g].trade_no[0])
			return 0;
	return 1;
}

static struct pcmd *pcmd_get(struct sess *s);
static void pcmd_arm(struct pcmd *pc, long long ms);

/* 0x58 to an idle pile whose model differs (§1.5: tariffs only while idle; retried later). */
static void maybe_push_tariff(struct sess *s)
{
	if (!s->push_pending || !s->have_tariff || s->state != S_ONLINE || !pile_idle(s))
		return;
	struct pcmd *pc = pcmd_get(s);
	if (!pc)
		return;
	pc->kind = PK_TARIFF;
	pc->req_type = 0x58;
	pc->answer = 0x57;
	send_tariff(s, 0x58, NULL, pc->seq);
	pc->state = PC_SENT;
	pcmd_arm(pc, s->y->command_timeout_ms);
	s->push_pending = 0;
	LOG(s, EVCS_LOG_INFO, "pushed tariff model %s (0x58)", s->tariff.model);
}

static void tariff_fetched(int status, const char *result, void *ud)
{
	struct sess *s = ud;
	s->tariff_fetching = 0;
	json_t *r = status == EVCS_OK && result ? json_loads(result, 0, NULL) : NULL;
	json_t *t = r ? json_object_get(r, "tariff") : NULL;
	if (!s->closed && t && json_is_object(t)) {
		char old[5];
		memcpy(old, s->tariff.model, 5);
		int had = s->have_tariff;
		if (tariff_load(s, t) == 0) {
			if (s->pending_0a) {
				s->pending_0a = 0;
				send_tariff(s, 0x0A, s->pending_0a_seq, NULL);
			}
			if ((!had || strcmp(old, s->tariff.model) != 0) && s->pile_model[0] &&
			    strcmp(s->pile_model, s->tariff.model) != 0) {
				s->push_pending = 1;
				maybe_push_tariff(s);
			}
		}
	} else if (!s->closed) {
		LOG(s, EVCS_LOG_WARNING, "no tariff for this pile (%s)", api->status_name(status));
	}
	json_decref(r);
	sess_unref(s);
}

static void tariff_fetch(struct sess *s)
{
	if (s->tariff_fetching || s->closed)
		return;
	s->tariff_fetching = 1;
	s->refs++;
	snprintf(s->y->jbuf, sizeof s->y->jbuf, "{\"tenant_id\":%lld,\"pile_id\":%lld,\"serial\":\"%s\"}",
		 (long long)s->tenant, (long long)s->pile_id, s->pile);
	if (api->store(s->y->p, "tariff.for_pile", s->y->jbuf, tariff_fetched, s) != EVCS_OK) {
		s->tariff_fetching = 0;
		sess_unref(s);
	}
}

static int on_tariff_changed(const evcs_event_t *ev, void *ud)
{
	struct ykc *y = ud;
	for (unsigned b = 0; b < PILE_BUCKETS; b++)
		for (struct sess *s = y->map[b]; s; s = s->hnext)
			if (s->state == S_ONLINE && (ev->tenant_id == 0 || ev->tenant_id == s->tenant)) {
				/* the pile needs the new model even if its current code matches ours */
				if (!s->pile_model[0])
					snprintf(s->pile_model, sizeof s->pile_model, "%s", "0000");
				tariff_fetch(s);
			}
	return EVCS_OK;
}

/* ---- commands (pending answers) ------------------------------------------------------------------ */

static struct pcmd *pcmd_get(struct sess *s)
{
	for (int i = 0; i < MAX_PCMD; i++)
		if (s->pcmd[i].state == PC_FREE) {
			struct pcmd *pc = &s->pcmd[i];
			memset(pc, 0, sizeof *pc);
			pc->s = s;
			pc->state = PC_PREP;
			return pc;
		}
	return NULL;
}

static void pcmd_release(struct pcmd *pc)
{
	if (pc->timer)
		api->timer_del(pc->timer);
	pc->timer = NULL;
	pc->cmd = NULL;
	pc->state = PC_FREE;
}

static void cmd_reply_json(evcs_cmd_t *cmd, int status, json_t *o)
{
	char *js = json_dumps(o, JSON_COMPACT);
	api->command_reply(cmd, status, js ? js : "{}");
	free(js);
	json_decref(o);
}

static void cmd_fail(evcs_cmd_t *cmd, int status, const char *msg)
{
	cmd_reply_json(cmd, status, json_pack("{s:s, s:s}", "error", api->status_name(status), "message", msg));
}

static void pcmd_timeout(void *ud)
{
	struct pcmd *pc = ud;
	struct sess *s = pc->s;
	pc->timer = NULL; /* one-shot timers free themselves */
	if (pc->kind == PK_START && pc->trade_no[0]) {
		LOG(s, EVCS_LOG_WARNING, "no answer to remote start %s: order closed", pc->trade_no);
		store_fmt(s, "session.stopped",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"trade_no\":\"%s\",\"state\":\"failed\","
			  "\"stop_reason_text\":\"no answer to the remote start\"}",
			  (long long)s->tenant, (long long)s->pile_id, pc->trade_no);
	} else if (pc->kind == PK_TARIFF) {
		s->push_pending = 1; /* retried at the next idle report */
	}
	if (pc->cmd)
		cmd_fail(pc->cmd, EVCS_ETIMEDOUT, "the pile did not answer in time");
	pcmd_release(pc);
}

static void pcmd_arm(struct pcmd *pc, long long ms)
{
	if (pc->timer)
		api->timer_del(pc->timer);
	pc->timer = api->timer_add(pc->s->y->p, (unsigned)(ms > 0 ? ms : 60000), 0, pcmd_timeout, pc);
}

/* §1.3: match by the sequence bytes (either order), then by (answer type, gun, trade_no). */
static struct pcmd *pcmd_match(struct sess *s, const struct evcs_ykc_frame *f, int gun, const char *trade)
{
	for (int i = 0; i < MAX_PCMD; i++) {
		struct pcmd *pc = &s->pcmd[i];
		if (pc->state == PC_SENT && pc->answer == f->type &&
		    ((pc->seq[0] == f->seq[0] && pc->seq[1] == f->seq[1]) ||
		     (pc->seq[0] == f->seq[1] && pc->seq[1] == f->seq[0])))
			return pc;
	}
	for (int i = 0; i < MAX_PCMD; i++) {
		struct pcmd *pc = &s->pcmd[i];
		if (pc->state == PC_SENT && pc->answer == f->type && (!gun || !pc->gun || pc->gun == gun) &&
		    (!trade || !pc->trade_no[0] || strcmp(trade, pc->trade_no) == 0))
			return pc;
	}
	return NULL;
}

/* The pile's answer as {"frame":"0xNN","name":..,"fields":{..}} plus extra keys. */
static json_t *answer_json(const struct evcs_ykc_msg *m, uint8_t type, enum evcs_ykc_proto proto)
{
	char ft[8];
	snprintf(ft, sizeof ft, "0x%02X", type);
	const char *name = evcs_ykc_type_name(type, proto);
	return json_pack("{s:s, s:s, s:o}", "frame", ft, "name", name ? name : "?", "fields",
			 evcs_ykc_json_fields(m));
}

/* ---- frame handlers ------------------------------------------------------------------------------- */

static void sess_online(struct sess *s, json_t *r, const uint8_t seq[2]);

static void login_done(int status, const char *result, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	struct ykc *y = s->y;
	json_t *r = result ? json_loads(result, 0, NULL) : NULL;
	if (s->closed)
		goto out;
	if (status != EVCS_OK) {
		/* cannot tell whether the pile is ours: no answer; the pile retries its login */
		LOG(s, EVCS_LOG_WARNING, "login of %s not answered: storage %s", s->pile, api->status_name(status));
		s->state = S_NEW;
		goto out;
	}
	if (!json_is_true(json_object_get(r, "accepted"))) {
		const char *why = json_string_value(json_object_get(r, "reason"));
		api->log(y->p, EVCS_LOG_NOTICE, 0, s->pile, "login refused from %s: %s", s->peer, why ? why : "?");
		send_login_reply(s, s->pile, rq->seq, 1);
		api->metric_add(y->m_login_refused, 1);
		struct failed *f = failed_slot(y, api->conn_peer_addr(s->c), 1);
		if (f)
			f->count++;
		evcs_field_t fl[] = {EVCS_FS("peer", s->peer), EVCS_FS("reason", why ? why : "refused")};
		publish(s, EVCS_EV_LOGIN_REFUSED, 0, fl, 2);
		api->conn_close(s->c, 1, "login refused");
		goto out;
	}
	sess_online(s, r, rq->seq);
out:
	json_decref(r);
	req_put(rq);
}

static void on_sync_timer(void *ud)
{
	struct sess *s = ud;
	if (s->state == S_ONLINE)
		send_time_sync(s, NULL);
}

static int on_command(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud);

static void sess_online(struct sess *s, json_t *r, const uint8_t seq[2])
{
	struct ykc *y = s->y;
	s->tenant = json_integer_value(json_object_get(r, "tenant_id"));
	s->pile_id = json_integer_value(json_object_get(r, "pile_id"));
	s->station_id = json_integer_value(json_object_get(r, "station_id"));
	json_t *t = json_object_get(r, "tariff");
	if (json_is_object(t) && tariff_load(s, t) < 0)
		LOG(s, EVCS_LOG_WARNING, "tariff from storage unusable; the pile gets none yet");
	/* §1.1: a new login replaces a live connection of the same pile */
	struct sess *old = map_get(y, s->pile);
	if (old && old != s) {
		map_del(y, old);
		LOG(s, EVCS_LOG_NOTICE, "new login from %s replaces the connection from %s", s->peer, old->peer);
		api->conn_close(old->c, 0, "replaced by a new login");
	} else {
		y->online++;
	}
	if (old != s)
		map_put(y, s);
	api->metric_set(y->m_online, y->online);
	s->state = S_ONLINE;
	api->conn_set_identity(s->c, s->tenant, s->pile);
	api->conn_set_idle_timeout(s->c, (unsigned)y->offline_after_ms);
	if (s->login_timer) {
		api->timer_del(s->login_timer);
		s->login_timer = NULL;
	}
	if (api->pile_claim(y->p, s->tenant, s->pile, on_command, s) != EVCS_OK)
		LOG(s, EVCS_LOG_ERR, "cannot claim the pile for commands");
	send_login_reply(s, s->pile, seq, 0);
	api->metric_add(y->m_login_ok, 1);
	s->last_seen_store_ms = now_ms();
	LOG(s, EVCS_LOG_INFO, "online from %s (YKC %s, %d gun(s))", s->peer, proto_name(s->proto), s->ngun);
	evcs_field_t f[] = {EVCS_FS("protocol", "ykc"), EVCS_FS("version", proto_name(s->proto)),
			    EVCS_FS("peer", s->peer), EVCS_FI("gun_count", s->ngun)};
	publish(s, EVCS_EV_PILE_ONLINE, 0, f, 4);
	/* §1.2 step 5: set the pile's clock right after login, then daily */
	send_time_sync(s, NULL);
	if (!s->sync_timer && y->sync_interval_ms > 0)
		s->sync_timer = api->timer_add(y->p, (unsigned)y->sync_interval_ms, 1, on_sync_timer, s);
}

static void on_login(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_login *l)
{
	struct ykc *y = s->y;
	if (s->state == S_LOGIN_PENDING)
		return; /* the pile retries while we ask storage: one question at a time */
	if (s->state == S_ONLINE) {
		if (strcmp(l->pile, s->pile) == 0)
			send_login_reply(s, s->pile, f->seq, 0); /* our 0x02 was lost: say it again */
		else
			LOG(s, EVCS_LOG_WARNING, "login as %s on the connection of %s ignored", l->pile, s->pile);
		return;
	}
	if (strspn(l->pile, "0123456789") != 14) {
		api->log(y->p, EVCS_LOG_NOTICE, 0, NULL, "login from %s with malformed pile number %s refused",
			 s->peer, l->pile);
		send_login_reply(s, l->pile, f->seq, 1);
		api->conn_close(s->c, 1, "bad pile number");
		return;
	}
	memcpy(s->pile, l->pile, sizeof s->pile);
	evcs_ykc_bcd_encode(s->pile, s->pile_bcd, 7);
	s->announced = l->protocol_version;
	s->proto = evcs_ykc_session_proto(s->lst->proto, l->protocol_version, false);
	if (l->protocol_version != (uint8_t)s->lst->proto)
		/* §1.7: the version byte is unreliable; never refuse over it */
		LOG(s, EVCS_LOG_INFO, "announces protocol_version %u on a %s listener", l->protocol_version,
		    proto_name(s->lst->proto));
	s->ngun = l->gun_count >= 1 && l->gun_count <= MAX_GUNS ? l->gun_count : 1;
	if (!s->guns) {
		s->guns = calloc((size_t)s->ngun, sizeof *s->guns);
		if (!s->guns) {
			api->conn_close(s->c, 0, "out of memory");
			return;
		}
		for (int g = 0; g < s->ngun; g++)
			s->guns[g].status = 0xFF;
	}
	struct req *rq = req_get(s, 0x01, f->seq);
	if (!rq)
		return;
	char fw[64], sim[48], peer[96];
	int n = snprintf(y->jbuf, sizeof y->jbuf,
			 "{\"serial\":\"%s\",\"protocol\":\"ykc\",\"protocol_version\":%u,\"gun_count\":%u,"
			 "\"pile_type\":%u,\"firmware\":\"%s\",\"sim\":\"%s\",\"network\":%u,\"carrier\":%u,"
			 "\"peer\":\"%s\"}",
			 s->pile, l->protocol_version, l->gun_count, l->pile_type,
			 jesc(fw, sizeof fw, l->program_version), jesc(sim, sizeof sim, l->sim), l->network,
			 l->carrier, jesc(peer, sizeof peer, s->peer));
	(void)n;
	s->state = S_LOGIN_PENDING;
	if (api->store(y->p, "pile.login", y->jbuf, login_done, rq) != EVCS_OK) {
		s->state = S_NEW;
		req_put(rq);
	}
}

static void on_heartbeat(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_heartbeat *h)
{
	struct evcs_ykc_msg m;
	msg_init(&m, 0x04);
	memcpy(m.u.heartbeat_reply.pile, s->pile, sizeof s->pile);
	memcpy(m.u.heartbeat_reply.gun, h->gun, sizeof h->gun);
	m.u.heartbeat_reply.ack = 0;
	send_msg(s, &m, f->seq, NULL);
}

static void on_model_verify(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_model_verify *v)
{
	memcpy(s->pile_model, v->model, sizeof s->pile_model);
	struct evcs_ykc_msg m;
	msg_init(&m, 0x06);
	memcpy(m.u.model.pile, s->pile, sizeof s->pile);
	memcpy(m.u.model.model, v->model, sizeof v->model);
	/* 0 = same as the platform; 1 = different: the pile must ask with 0x09 */
	m.u.model.result = s->have_tariff && strcmp(v->model, s->tariff.model) == 0 ? 0 : 1;
	send_msg(s, &m, f->seq, NULL);
	if (!s->have_tariff)
		tariff_fetch(s);
}

static void on_model_request(struct sess *s, const struct evcs_ykc_frame *f)
{
	if (s->have_tariff) {
		send_tariff(s, 0x0A, f->seq, NULL);
		memcpy(s->pile_model, s->tariff.model, sizeof s->pile_model);
		return;
	}
	/* answered when the model arrives; §6.7: a pile without a model does not charge */
	memcpy(s->pending_0a_seq, f->seq, 2);
	s->pending_0a = 1;
	tariff_fetch(s);
}

static struct gun *gun_of(struct sess *s, const char *g, uint8_t type)
{
	int n = gun_no(g);
	if (n < 1 || n > s->ngun) {
		if (!bit_test_set(s->warned_pile, type))
			LOG(s, EVCS_LOG_WARNING, "0x%02X for gun %s, but the pile announced %d gun(s); dropped",
			    type, g, s->ngun);
		return NULL;
	}
	return &s->guns[n - 1];
}

static void gun_close_order(struct gun *g)
{
	g->trade_no[0] = 0;
	g->session_id = 0;
	g->idle_in_order = 0;
	g->stopping = 0;
	g->started = 0;
}

static void session_started_store(struct sess *s, int gun, const char *trade, int result, int reason)
{
	store_fmt(s, "session.started",
		  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"trade_no\":\"%s\",\"result\":%d,"
		  "\"fail_reason\":%d}",
		  (long long)s->tenant, (long long)s->pile_id, gun, trade, result, reason);
	evcs_field_t f[] = {EVCS_FS("trade_no", trade), EVCS_FI("result", result), EVCS_FI("reason", reason)};
	publish(s, EVCS_EV_SESSION_STARTED, gun, f, 3);
}

static void on_realtime(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *msg)
{
	const struct evcs_ykc_realtime *rt = &msg->u.realtime;
	struct gun *g = gun_of(s, rt->gun, f->type);
	if (!g)
		return;
	int gn = (int)(g - s->guns) + 1;
	int64_t now = now_ms();
	uint8_t st = rt->status <= 3 ? rt->status : 1;
	if (st != g->status || rt->plugged != g->plugged || rt->hw_fault != g->fault ||
	    rt->gun_returned != g->returned) {
		int prev = g->status == 0xFF ? -1 : g->status;
		store_fmt(s, "gun.status",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"status\":%u,\"plugged\":%u,"
			  "\"gun_returned\":%u,\"fault\":%u,\"ts_ms\":%lld}",
			  (long long)s->tenant, (long long)s->pile_id, gn, st, rt->plugged, rt->gun_returned,
			  rt->hw_fault, (long long)now);
		g->status = st;
		g->plugged = rt->plugged;
		g->returned = rt->gun_returned;
		g->fault = rt->hw_fault;
		evcs_field_t fl[] = {EVCS_FI("status", st), EVCS_FI("prev_status", prev),
				     EVCS_FI("plugged", rt->plugged), EVCS_FI("fault", rt->hw_fault)};
		publish(s, EVCS_EV_GUN_STATUS, gn, fl, 4);
	}
	int has_trade = !all_zero(rt->trade_no);
	if (st == 3 && has_trade) {
		if (!g->trade_no[0] || strcmp(g->trade_no, rt->trade_no) != 0) {
			/* an order we did not see start (pile restarted offline, or we did) */
			gun_close_order(g);
			memcpy(g->trade_no, rt->trade_no, sizeof g->trade_no);
		}
		g->idle_in_order = 0;
		if (!g->started) {
			g->started = 1;
			session_started_store(s, gn, g->trade_no, 1, 0);
		}
		int64_t amount = evcs_ykc_amount_to_money(rt->amount_yuan);
		if (g->session_id > 0)
			store_fmt(s, "meter.sample",
				  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"session_id\":%lld,\"ts_ms\":%lld,"
				  "\"kwh\":%u,\"amount\":%lld,\"voltage_dv\":%u,\"current_da\":%u,\"soc\":%u,"
				  "\"gun_temp_c\":%d,\"batt_max_temp_c\":%d,\"remaining_min\":%u}",
				  (long long)s->tenant, (long long)s->pile_id, (long long)g->session_id,
				  (long long)now, rt->kwh, (long long)amount, rt->voltage_v, rt->current_a, rt->soc,
				  rt->gun_temp_c, rt->batt_max_temp_c, rt->remaining_min);
		else
			store_fmt(s, "meter.sample",
				  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"trade_no\":\"%s\",\"ts_ms\":%lld,"
				  "\"kwh\":%u,\"amount\":%lld,\"voltage_dv\":%u,\"current_da\":%u,\"soc\":%u,"
				  "\"gun_temp_c\":%d,\"batt_max_temp_c\":%d,\"remaining_min\":%u}",
				  (long long)s->tenant, (long long)s->pile_id, rt->trade_no, (long long)now, rt->kwh,
				  (long long)amount, rt->voltage_v, rt->current_a, rt->soc, rt->gun_temp_c,
				  rt->batt_max_temp_c, rt->remaining_min);
		evcs_field_t fl[] = {EVCS_FS("trade_no", rt->trade_no), EVCS_FI("voltage_dv", rt->voltage_v),
				     EVCS_FI("current_da", rt->current_a), EVCS_FI("kwh", rt->kwh),
				     EVCS_FI("amount", amount), EVCS_FI("soc", rt->soc),
				     EVCS_FI("gun_temp_c", rt->gun_temp_c)};
		publish(s, EVCS_EV_METER_SAMPLE, gn, fl, 7);
	} else if (st == 2 && g->trade_no[0] && g->started && !g->stopping) {
		/* §1.5: two idle reports during an order mark it abnormal */
		if (++g->idle_in_order >= 2) {
			LOG(s, EVCS_LOG_WARNING, "gun %d idle twice during order %s: marked abnormal", gn, g->trade_no);
			store_fmt(s, "session.stopped",
				  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"trade_no\":\"%s\",\"state\":\"abnormal\","
				  "\"stop_reason_text\":\"gun idle during the order\"}",
				  (long long)s->tenant, (long long)s->pile_id, g->trade_no);
			gun_close_order(g);
		}
	}
	struct pcmd *pc = NULL;
	for (int i = 0; i < MAX_PCMD; i++)
		if (s->pcmd[i].state == PC_SENT && s->pcmd[i].answer == 0x13 && s->pcmd[i].gun == gn)
			pc = &s->pcmd[i];
	if (pc) {
		if (pc->cmd)
			cmd_reply_json(pc->cmd, EVCS_OK, answer_json(msg, f->type, s->proto));
		pcmd_release(pc);
	}
	if (st == 2)
		maybe_push_tariff(s);
}

static void on_event_frame(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *m)
{
	/* BMS / fault frames: stored as JSON (the codec's rendering), faults on the bus */
	const char *trade = NULL, *gun = NULL;
	int code = 0;
	switch (f->type) {
	case 0x15: trade = m->u.bms_handshake.trade_no; gun = m->u.bms_handshake.gun; break;
	case 0x17: trade = m->u.bms_params.trade_no; gun = m->u.bms_params.gun; break;
	case 0x19: trade = m->u.bms_charge_end.trade_no; gun = m->u.bms_charge_end.gun; break;
	case 0x1B: trade = m->u.bms_error.trade_no; gun = m->u.bms_error.gun; break;
	case 0x1D:
	case 0x21:
		trade = m->u.abort_.trade_no;
		gun = m->u.abort_.gun;
		code = m->u.abort_.fault;
		break;
	case 0x23: trade = m->u.bms_demand.trade_no; gun = m->u.bms_demand.gun; break;
	case 0x25: trade = m->u.bms_info.trade_no; gun = m->u.bms_info.gun; break;
	case 0x61: gun = m->u.ground_lock_status.gun; code = m->u.ground_lock_status.alarm; break;
	default: return;
	}
	json_t *fields = evcs_ykc_json_fields(m);
	char *fj = json_dumps(fields, JSON_COMPACT);
	json_decref(fields);
	const char *name = evcs_ykc_type_name(f->type, s->proto);
	if (fj)
		store_fmt(s, "event.store",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"pile\":\"%s\",\"gun\":%d,\"frame\":\"0x%02X\","
			  "\"name\":\"%s\",\"trade_no\":\"%s\",\"fields\":%s}",
			  (long long)s->tenant, (long long)s->pile_id, s->pile, gun_no(gun), f->type,
			  name ? name : "?", trade ? trade : "", fj);
	if (f->type == 0x1B || f->type == 0x1D || f->type == 0x21) {
		char frame[8];
		snprintf(frame, sizeof frame, "0x%02X", f->type);
		evcs_field_t fl[] = {EVCS_FS("frame", frame), EVCS_FI("code", code),
				     EVCS_FS("detail", fj ? fj : "")};
		publish(s, EVCS_EV_PILE_FAULT, gun_no(gun), fl, 3);
	}
	free(fj);
}

/* -- pile-initiated start (0x31, 1.6 0xA1) -- */

static void send_start_auth(struct sess *s, struct req *rq, int ok, int reason)
{
	struct evcs_ykc_msg m;
	msg_init(&m, rq->type == 0xA1 ? 0xA2 : 0x32);
	struct evcs_ykc_start_auth *a = &m.u.start_auth;
	snprintf(a->trade_no, sizeof a->trade_no, "%s", rq->trade_no);
	memcpy(a->pile, s->pile, sizeof s->pile);
	gun_str(a->gun, rq->gun);
	snprintf(a->logical_card, sizeof a->logical_card, "%s",
		 ok && strlen(rq->logical) == 16 && strspn(rq->logical, "0123456789") == 16 ? rq->logical
											   : "0000000000000000");
	uint32_t bal = 0;
	if (ok && evcs_ykc_balance_from_money(rq->balance > 0 ? rq->balance : 0, &bal) < 0)
		bal = UINT32_MAX;
	a->balance_yuan = bal;
	a->auth_ok = (uint8_t)(ok ? 1 : 0);
	a->fail_reason = (uint8_t)(ok ? 0 : reason);
	memcpy(a->parallel_no, rq->parallel_no, sizeof a->parallel_no);
	if (!a->parallel_no[0])
		memcpy(a->parallel_no, "000000000000", 13);
	send_msg(s, &m, rq->seq, NULL);
}

static void start_created(int status, const char *result, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	json_t *r = result ? json_loads(result, 0, NULL) : NULL;
	if (!s->closed) {
		if (status != EVCS_OK) {
			LOG(s, EVCS_LOG_WARNING, "start request on gun %d not answered: storage %s", rq->gun,
			    api->status_name(status));
		} else {
			struct gun *g = &s->guns[rq->gun - 1];
			gun_close_order(g);
			memcpy(g->trade_no, rq->trade_no, sizeof g->trade_no);
			g->session_id = json_integer_value(json_object_get(r, "session_id"));
			send_start_auth(s, rq, 1, 0);
		}
	}
	json_decref(r);
	req_put(rq);
}

static void start_authorised(int status, const char *result, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	json_t *r = result ? json_loads(result, 0, NULL) : NULL;
	if (s->closed)
		goto out;
	if (status != EVCS_OK) {
		/* no verdict: stay silent rather than refuse with an invented reason; the pile retries */
		LOG(s, EVCS_LOG_WARNING, "start request on gun %d not answered: storage %s", rq->gun,
		    api->status_name(status));
		goto out;
	}
	if (!json_is_true(json_object_get(r, "authorised"))) {
		int reason = (int)json_integer_value(json_object_get(r, "fail_reason"));
		LOG(s, EVCS_LOG_INFO, "start on gun %d refused (reason %d)", rq->gun, reason);
		send_start_auth(s, rq, 0, reason ? reason : 1);
		goto out;
	}
	const char *lc = json_string_value(json_object_get(r, "logical_card"));
	snprintf(rq->logical, sizeof rq->logical, "%s", lc ? lc : "");
	rq->balance = json_integer_value(json_object_get(r, "balance"));
	rq->card_id = json_integer_value(json_object_get(r, "card_id"));
	rq->driver_id = json_integer_value(json_object_get(r, "driver_id"));
	char pc[17], vin[40];
	hex_of(rq->pcard, 8, pc);
	struct ykc *y = s->y;
	int n = snprintf(y->jbuf, sizeof y->jbuf,
			 "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"trade_no\":\"%s\",\"start_mode\":\"%s\","
			 "\"card_id\":%lld,\"driver_id\":%lld,\"physical_card\":\"%s\",\"vin\":\"%s\",\"tariff\":%s}",
			 (long long)s->tenant, (long long)s->pile_id, rq->gun, rq->trade_no,
			 rq->start_mode == 3 ? "vin" : "card", (long long)rq->card_id, (long long)rq->driver_id,
			 rq->start_mode == 1 ? pc : "", jesc(vin, sizeof vin, rq->vin),
			 s->have_tariff ? s->tariff_json : "null");
	if (n > 0 && (size_t)n < sizeof y->jbuf &&
	    api->store(y->p, "session.create", y->jbuf, start_created, rq) == EVCS_OK) {
		json_decref(r);
		return; /* rq travels on */
	}
out:
	json_decref(r);
	req_put(rq);
}

static int next_trade(struct sess *s, int gn, char out[33])
{
	struct gun *g = &s->guns[gn - 1];
	time_t now = time(NULL);
	if (now != g->counter_sec) {
		g->counter_sec = now;
		g->counter = 0;
	} else if (++g->counter > 9999) {
		return -1;
	}
	struct tm tm;
	local_tm(s->y, now, &tm);
	char gs[3];
	gun_str(gs, gn);
	return evcs_ykc_trade_no(out, s->pile, gs, &tm, g->counter);
}

static void on_start_request(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_start_request *q)
{
	struct gun *g = gun_of(s, q->gun, f->type);
	if (!g)
		return;
	struct req *rq = req_get(s, f->type, f->seq);
	if (!rq)
		return;
	rq->gun = (int)(g - s->guns) + 1;
	rq->start_mode = q->start_mode;
	memcpy(rq->pcard, q->card, 8);
	evcs_ykc_vin_text(q->vin, true, rq->vin);
	if (f->type == 0xA1)
		memcpy(rq->parallel_no, q->parallel_no, sizeof rq->parallel_no);
	if (next_trade(s, rq->gun, rq->trade_no) < 0) {
		LOG(s, EVCS_LOG_WARNING, "trade-number counter exhausted this second; start request dropped");
		req_put(rq);
		return;
	}
	char card[17], pw[33], vin[40];
	hex_of(q->card, 8, card);
	hex_of(q->password_md5, 16, pw);
	const char *mode = q->start_mode == 1 ? "card" : q->start_mode == 3 ? "vin" : "account";
	evcs_field_t fl[] = {EVCS_FS("trade_no", rq->trade_no), EVCS_FS("mode", mode),
			     EVCS_FS("card", q->start_mode == 1 ? card : ""), EVCS_FS("vin", rq->vin),
			     EVCS_FI("driver_id", 0)};
	if (publish(s, EVCS_EV_SESSION_START, rq->gun, fl, 5) == EVCS_VETO) {
		LOG(s, EVCS_LOG_INFO, "start on gun %d vetoed by policy", rq->gun);
		send_start_auth(s, rq, 0, 6); /* "account may not charge at this pile" */
		req_put(rq);
		return;
	}
	struct ykc *y = s->y;
	snprintf(y->jbuf, sizeof y->jbuf,
		 "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"start_mode\":%u,\"card\":\"%s\","
		 "\"vin\":\"%s\",\"need_password\":%u,\"password_md5\":\"%s\"}",
		 (long long)s->tenant, (long long)s->pile_id, rq->gun, q->start_mode, card,
		 jesc(vin, sizeof vin, rq->vin), q->need_password, pw);
	if (api->store(y->p, "session.authorize", y->jbuf, start_authorised, rq) != EVCS_OK)
		req_put(rq);
}

/* -- remote start / stop answers -- */

static void on_remote_start_reply(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *m)
{
	const struct evcs_ykc_remote_start_reply *a = &m->u.remote_start_reply;
	struct gun *g = gun_of(s, a->gun, f->type);
	if (!g)
		return;
	int gn = (int)(g - s->guns) + 1;
	struct pcmd *pc = pcmd_match(s, f, gn, a->trade_no);
	int64_t sid = 0;
	if (pc) {
		sid = pc->session_id;
	} else if (a->result == 1 && g->late_trade[0] && strcmp(g->late_trade, a->trade_no) == 0 &&
		   now_ms() <= g->late_until_ms) {
		sid = g->late_session; /* §1.4: plugged in within 60 s after "not plugged" */
	} else {
		LOG(s, EVCS_LOG_INFO, "0x%02X for %s matches no pending start; ignored", f->type, a->trade_no);
		return;
	}
	session_started_store(s, gn, a->trade_no, a->result == 1, a->fail_reason);
	if (a->result == 1) {
		gun_close_order(g);
		memcpy(g->trade_no, a->trade_no, sizeof g->trade_no);
		g->session_id = sid;
		g->started = 1;
		g->late_trade[0] = 0;
	} else if (a->fail_reason == 5) {
		memcpy(g->late_trade, a->trade_no, sizeof g->late_trade);
		g->late_session = sid;
		g->late_until_ms = now_ms() + 60000;
	}
	if (pc) {
		if (pc->cmd) {
			json_t *o = answer_json(m, f->type, s->proto);
			json_object_set_new(o, "trade_no", json_string(a->trade_no));
			json_object_set_new(o, "session_id", json_integer(sid));
			json_object_set_new(o, "result", json_integer(a->result));
			json_object_set_new(o, "reason", json_integer(a->fail_reason));
			cmd_reply_json(pc->cmd, a->result == 1 ? EVCS_OK : EVCS_EREFUSED, o);
		}
		pcmd_release(pc);
	}
}

static void on_generic_answer(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *m, int gun)
{
	struct pcmd *pc = pcmd_match(s, f, gun, NULL);
	if (!pc) {
		LOG(s, EVCS_LOG_DEBUG, "unsolicited 0x%02X ignored", f->type);
		return;
	}
	if (f->type == 0x57 && m->u.pile_result.result == 1) {
		memcpy(s->pile_model, s->tariff.model, sizeof s->pile_model);
		s->push_pending = 0; /* the pile has our model: an earlier refusal needs no retry */
	}
	if (pc->kind == PK_TARIFF && f->type == 0x57 && m->u.pile_result.result != 1)
		s->push_pending = 1;
	if (pc->cmd) {
		/* each answer's own "failed" encoding (ykc.md §4): the result byte sits at a different
		 * offset per layout, and 0x41/0x93 use 0 for success */
		int refused = 0;
		switch (f->type) {
		case 0x51: case 0x57: case 0x91: case 0xF1: refused = m->u.pile_result.result == 0; break;
		case 0x63: refused = m->u.ground_lock_reply.result == 0; break;
		case 0x35: refused = m->u.remote_stop_reply.result == 0; break;
		case 0x43: refused = m->u.card_sync_reply.result == 0; break;
		case 0x41: refused = m->u.balance_reply.result != 0; break;
		case 0x93: refused = m->u.upgrade_reply.status != 0; break;
		}
		cmd_reply_json(pc->cmd, refused ? EVCS_EREFUSED : EVCS_OK, answer_json(m, f->type, s->proto));
	}
	pcmd_release(pc);
}

/* -- transaction records -- */

static void record_done(int status, const char *result, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	struct ykc *y = s->y;
	json_t *r = result ? json_loads(result, 0, NULL) : NULL;
	if (status == EVCS_EUNAVAIL || status == EVCS_ERR || status == EVCS_EBUSY || status == EVCS_ENOMEM) {
		/* not durable: no 0x40, the pile resends (§1.6) */
		api->metric_add(y->m_rec_unacked, 1);
		api->log(y->p, EVCS_LOG_WARNING, s->tenant, s->pile[0] ? s->pile : NULL,
			 "record %s not stored (%s): not acknowledged, waiting for the resend", rq->trade_no,
			 api->status_name(status));
		goto out;
	}
	int ok = status == EVCS_OK;
	int dup = ok && json_is_true(json_object_get(r, "duplicate"));
	if (!ok)
		LOG(s, EVCS_LOG_WARNING, "record %s rejected by storage (%s): %s; answered as illegal",
		    rq->trade_no, api->status_name(status), result ? result : "");
	if (!s->closed) {
		struct evcs_ykc_msg m;
		msg_init(&m, 0x40);
		memcpy(m.u.record_ack.trade_no, rq->trade_no, sizeof rq->trade_no);
		m.u.record_ack.result = ok ? 0 : 1;
		send_msg(s, &m, rq->seq, NULL);
	}
	if (!ok)
		goto out;
	api->metric_add(dup ? y->m_rec_dup : y->m_rec_stored, 1);
	if (!s->closed && rq->gun >= 1 && rq->gun <= s->ngun) {
		struct gun *g = &s->guns[rq->gun - 1];
		if (strcmp(g->trade_no, rq->trade_no) == 0)
			gun_close_order(g);
	}
	if (!dup) {
		int64_t sid = json_integer_value(json_object_get(r, "session_id"));
		evcs_field_t f[] = {EVCS_FS("trade_no", rq->trade_no), EVCS_FI("session_id", sid),
				    EVCS_FI("total_kwh", json_integer_value(json_object_get(r, "total_kwh"))),
				    EVCS_FI("total_amount", json_integer_value(json_object_get(r, "total_amount"))),
				    EVCS_FI("pile_amount", json_integer_value(json_object_get(r, "pile_amount"))),
				    EVCS_FB("duplicate", 0)};
		publish(s, EVCS_EV_TRANSACTION_CLOSED, rq->gun, f, 6);
		evcs_field_t f2[] = {EVCS_FS("trade_no", rq->trade_no), EVCS_FI("stop_reason", rq->start_mode),
				     EVCS_FS("stop_reason_text", stop_reason_text(rq->start_mode))};
		publish(s, EVCS_EV_SESSION_STOPPED, rq->gun, f2, 3);
		/* a closed order may free the pile for a waiting tariff */
		if (!s->closed)
			maybe_push_tariff(s);
	}
out:
	json_decref(r);
	req_put(rq);
}

static void on_record(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_record *rec)
{
	struct ykc *y = s->y;
	int gn = gun_no(rec->gun);
	if (gn < 1 || gn > MAX_GUNS) {
		LOG(s, EVCS_LOG_WARNING, "record %s with gun %s dropped", rec->trade_no, rec->gun);
		return;
	}
	struct req *rq = req_get(s, 0x3B, f->seq);
	if (!rq)
		return;
	rq->gun = gn;
	memcpy(rq->trade_no, rec->trade_no, sizeof rq->trade_no);
	rq->start_mode = rec->stop_reason; /* reused: carried to the SESSION_STOPPED event */
	char raw[2 * EVCS_YKC_MAX_BODY + 1], vin[18], vine[40], pc[17], peer[96];
	hex_of(f->body, f->body_len, raw);
	evcs_ykc_vin_text(rec->vin, false, vin);
	hex_of(rec->physical_card, 8, pc);
#define A(x) evcs_ykc_amount_to_money(x)
	int n = snprintf(
	    y->jbuf, sizeof y->jbuf,
	    "{\"tenant_id\":%lld,\"pile_id\":%lld,\"pile\":\"%s\",\"gun\":%d,\"trade_no\":\"%s\",\"peer\":\"%s\","
	    "\"raw_hex\":\"%s\",\"stop_reason_text\":\"%s\",\"record\":{\"start_ms\":%lld,\"end_ms\":%lld,"
	    "\"sharp_price\":%u,\"sharp_kwh\":%u,\"sharp_loss_kwh\":%u,\"sharp_amount\":%lld,"
	    "\"peak_price\":%u,\"peak_kwh\":%u,\"peak_loss_kwh\":%u,\"peak_amount\":%lld,"
	    "\"flat_price\":%u,\"flat_kwh\":%u,\"flat_loss_kwh\":%u,\"flat_amount\":%lld,"
	    "\"valley_price\":%u,\"valley_kwh\":%u,\"valley_loss_kwh\":%u,\"valley_amount\":%lld,"
	    "\"meter_start_kwh\":%llu,\"meter_stop_kwh\":%llu,\"total_kwh\":%u,\"total_loss_kwh\":%u,"
	    "\"total_amount\":%lld,\"vin\":\"%s\",\"trade_flag\":%u,\"trade_time_ms\":%lld,"
	    "\"stop_reason\":%u,\"physical_card\":\"%s\"}}",
	    (long long)s->tenant, (long long)s->pile_id, s->pile, gn, rec->trade_no, jesc(peer, sizeof peer, s->peer),
	    raw, stop_reason_text(rec->stop_reason), (long long)cp56_to_ms(y, &rec->start),
	    (long long)cp56_to_ms(y, &rec->end), rec->sharp_price, rec->sharp_kwh, rec->sharp_loss_kwh,
	    (long long)A(rec->sharp_amount), rec->peak_price, rec->peak_kwh, rec->peak_loss_kwh,
	    (long long)A(rec->peak_amount), rec->flat_price, rec->flat_kwh, rec->flat_loss_kwh,
	    (long long)A(rec->flat_amount), rec->valley_price, rec->valley_kwh, rec->valley_loss_kwh,
	    (long long)A(rec->valley_amount), (unsigned long long)rec->meter_start_kwh,
	    (unsigned long long)rec->meter_stop_kwh, rec->total_kwh, rec->total_loss_kwh,
	    (long long)A(rec->total_amount_yuan), jesc(vine, sizeof vine, vin), rec->trade_flag,
	    (long long)cp56_to_ms(y, &rec->trade_time), rec->stop_reason, pc);
#undef A
	if (n < 0 || (size_t)n >= sizeof y->jbuf ||
	    api->store(y->p, "txn.record", y->jbuf, record_done, rq) != EVCS_OK) {
		LOG(s, EVCS_LOG_ERR, "record %s could not be handed to storage", rec->trade_no);
		req_put(rq);
	}
}

/* §6.3: a short 0x3B is evidence, not a session: keep its bytes in an alarm, answer "illegal". */
static void on_short_record(struct sess *s, const struct evcs_ykc_frame *f)
{
	char raw[2 * EVCS_YKC_MAX_BODY + 1];
	hex_of(f->body, f->body_len, raw);
	store_fmt(s, "alarm.raise",
		  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"pile\":\"%s\",\"gun\":0,\"code\":\"ykc.record.short\","
		  "\"severity\":\"major\",\"message\":\"transaction record shorter than 158 bytes (%zu)\","
		  "\"details\":{\"raw_hex\":\"%s\",\"body_length\":%zu}}",
		  (long long)s->tenant, (long long)s->pile_id, s->pile, f->body_len, raw, f->body_len);
	if (!s->y->nack_short_record || f->body_len < 16)
		return;
	struct evcs_ykc_msg m;
	msg_init(&m, 0x40);
	evcs_ykc_bcd_decode(f->body, 16, m.u.record_ack.trade_no);
	m.u.record_ack.result = 1;
	send_msg(s, &m, f->seq, NULL);
}

/* ---- frame dispatch --------------------------------------------------------------------------- */

static int pile_offset(uint8_t type)
{
	switch (type) {
	case 0x13: case 0x15: case 0x17: case 0x19: case 0x1B: case 0x1D: case 0x21: case 0x23:
	case 0x25: case 0x33: case 0x3B: case 0xA3:
		return 16;
	default:
		return 0;
	}
}

static void handle_frame(struct sess *s, const struct evcs_ykc_frame *f)
{
	struct ykc *y = s->y;
	s->crc = f->crc_order; /* §2.4: answer in the order the pile last used */
	if (f->enc != 0) {
		if (s->enc_logged++ < 3)
			LOG(s, EVCS_LOG_WARNING, "encrypted frame 0x%02X (flag %u) dropped: unsupported", f->type, f->enc);
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	if (!evcs_ykc_from_pile(f->type)) {
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	if (s->state != S_ONLINE && f->type != 0x01) {
		/* §1.2: nothing but a login before a login */
		if (s->prelogin_logged++ < 3)
			api->log(y->p, EVCS_LOG_INFO, 0, NULL, "0x%02X from %s before login dropped", f->type, s->peer);
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	struct evcs_ykc_msg m;
	evcs_ykc_decode_frame(f, s->state == S_ONLINE ? s->proto : EVCS_YKC_PROTO_16, &m, NULL);
	enum evcs_ykc_verdict v = evcs_ykc_tolerate(&y->tol, &m);
	if (m.status == EVCS_YKC_UNKNOWN_TYPE) {
		if (!bit_test_set(s->warned_unknown, f->type))
			LOG(s, EVCS_LOG_WARNING, "unknown frame type 0x%02X ignored%s", f->type,
			    f->type == 0x3D ? " (a YKC 1.7 transaction record: not supported by 1.5/1.6)" : "");
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	if (v == EVCS_YKC_DROP) {
		if (!bit_test_set(s->warned_body, f->type))
			LOG(s, EVCS_LOG_WARNING, "0x%02X with a %zu-byte body lacks needed fields; dropped", f->type,
			    f->body_len);
		count_frame(y, f->type, OUT_BAD);
		return;
	}
	if (v == EVCS_YKC_ACT_WARN && !bit_test_set(s->warned_body, f->type))
		LOG(s, EVCS_LOG_WARNING, "0x%02X body is %zu bytes (layout %d); tolerated", f->type, f->body_len,
		    evcs_ykc_layout_size(f->type));
	if (s->state == S_ONLINE && f->type != 0x01) {
		int off = pile_offset(f->type);
		if (f->body_len >= (size_t)off + 7 && memcmp(f->body + off, s->pile_bcd, 7) != 0) {
			if (!bit_test_set(s->warned_pile, f->type))
				LOG(s, EVCS_LOG_WARNING, "0x%02X carries another pile number; dropped", f->type);
			count_frame(y, f->type, OUT_BAD);
			return;
		}
		int64_t now = now_ms();
		if (now - s->last_seen_store_ms >= y->seen_interval_ms) {
			s->last_seen_store_ms = now;
			store_fmt(s, "pile.seen", "{\"tenant_id\":%lld,\"pile_id\":%lld,\"ts_ms\":%lld}",
				  (long long)s->tenant, (long long)s->pile_id, (long long)now);
		}
	}
	if (v == EVCS_YKC_QUARANTINE) {
		count_frame(y, f->type, OUT_BAD);
		on_short_record(s, f);
		return;
	}
	count_frame(y, f->type, OUT_OK);
	switch (f->type) {
	case 0x01: on_login(s, f, &m.u.login); break;
	case 0x03: on_heartbeat(s, f, &m.u.heartbeat); break;
	case 0x05: on_model_verify(s, f, &m.u.model); break;
	case 0x09: on_model_request(s, f); break;
	case 0x13: on_realtime(s, f, &m); break;
	case 0x15: case 0x17: case 0x19: case 0x1B: case 0x1D: case 0x21: case 0x23: case 0x25: case 0x61:
		on_event_frame(s, f, &m);
		break;
	case 0x31: case 0xA1: on_start_request(s, f, &m.u.start_request); break;
	case 0x33: case 0xA3: on_remote_start_reply(s, f, &m); break;
	case 0x35: on_generic_answer(s, f, &m, gun_no(m.u.remote_stop_reply.gun)); break;
	case 0x3B: on_record(s, f, &m.u.record); break;
	case 0x63: on_generic_answer(s, f, &m, gun_no(m.u.ground_lock_reply.gun)); break;
	case 0x41: case 0x43: case 0x45: case 0x47: case 0x51: case 0x55: case 0x57: case 0x91: case 0x93:
	case 0xF1:
		on_generic_answer(s, f, &m, 0);
		break;
	default:
		LOG(s, EVCS_LOG_DEBUG, "0x%02X has no handler", f->type);
	}
}

/* ---- connections ------------------------------------------------------------------------------- */

static void login_timeout(void *ud)
{
	struct sess *s = ud;
	s->login_timer = NULL;
	if (s->state != S_ONLINE && !s->closed) {
		api->log(s->y->p, EVCS_LOG_INFO, 0, NULL, "%s did not log in within %lld ms; closing", s->peer,
			 s->y->login_timeout_ms);
		api->conn_close(s->c, 0, "login timeout");
	}
}

static int on_accept(evcs_conn_t *c, void *ud)
{
	struct lst *l = ud;
	struct ykc *y = l->y;
	const char *addr = api->conn_peer_addr(c);
	if (login_blocked(y, addr)) {
		api->log(y->p, EVCS_LOG_NOTICE, 0, NULL, "connection from %s refused: too many failed logins", addr);
		return -1;
	}
	struct sess *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->y = y;
	s->lst = l;
	s->c = c;
	s->refs = 1; /* the connection's own */
	s->proto = l->proto;
	s->crc = EVCS_YKC_CRC_LE;
	snprintf(s->peer, sizeof s->peer, "%s", api->conn_peer(c));
	s->next = y->all;
	if (y->all)
		y->all->prev = s;
	y->all = s;
	api->conn_set_data(c, s);
	s->login_timer = api->timer_add(y->p, (unsigned)y->login_timeout_ms, 0, login_timeout, s);
	return 0;
}

static void on_read(evcs_conn_t *c, void *ud)
{
	struct sess *s = api->conn_get_data(c);
	struct ykc *y = s->y;
	struct evbuffer *in = api->conn_input(c);
	s->refs++; /* a handler may close the connection under us */
	for (;;) {
		size_t len = evbuffer_get_length(in);
		if (!len || s->closed)
			break;
		/* two frames' worth is always enough to find the next frame (§2.1) */
		size_t take = len < 2 * EVCS_YKC_MAX_FRAME ? len : 2 * EVCS_YKC_MAX_FRAME;
		const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)take);
		if (!buf)
			break;
		struct evcs_ykc_scan sc;
		struct evcs_ykc_frame f;
		evcs_ykc_scan_init(&sc, buf, take, y->len_compat ? EVCS_YKC_SCAN_LEN_COMPAT : 0);
		while (!s->closed && evcs_ykc_scan_next(&sc, &f))
			handle_frame(s, &f);
		if (sc.skipped) {
			s->skipped += sc.skipped;
			api->metric_add(y->m_skipped, (int64_t)sc.skipped);
			LOG(s, EVCS_LOG_INFO, "skipped %zu byte(s) of noise (%llu on this connection)", sc.skipped,
			    (unsigned long long)s->skipped);
		}
		if (s->closed)
			break;
		evbuffer_drain(in, sc.pos);
		if (evcs_ykc_scan_keep(&sc) == 0) {
			s->partial_since_ms = 0;
			if (sc.pos == 0)
				break;
			continue;
		}
		/* an incomplete candidate remains */
		int64_t now = now_ms();
		if (!s->partial_since_ms)
			s->partial_since_ms = now;
		if (now - s->partial_since_ms > y->partial_timeout_ms) {
			/* §2.5: a false 0x68 with a big length must not hold real frames back forever */
			evbuffer_drain(in, 1);
			s->skipped++;
			api->metric_add(y->m_skipped, 1);
			s->partial_since_ms = 0;
			continue;
		}
		if (sc.pos == 0)
			break;
	}
	sess_unref(s);
}

static void on_close(evcs_conn_t *c, const char *reason, void *ud)
{
	struct sess *s = api->conn_get_data(c);
	if (!s)
		return;
	struct ykc *y = s->y;
	s->closed = 1;
	if (s->login_timer)
		api->timer_del(s->login_timer);
	if (s->sync_timer)
		api->timer_del(s->sync_timer);
	s->login_timer = s->sync_timer = NULL;
	int holder = s->state == S_ONLINE && map_get(y, s->pile) == s;
	for (int i = 0; i < MAX_PCMD; i++) {
		struct pcmd *pc = &s->pcmd[i];
		if (pc->state == PC_FREE)
			continue;
		/* while we hold the pile, releasing the claim answers its commands "offline";
		 * a replaced connection answers its own (the claim moved to the new one) */
		if (pc->cmd && !holder)
			cmd_fail(pc->cmd, EVCS_EOFFLINE, "the pile's connection was replaced");
		pc->cmd = NULL;
		if (pc->state == PC_PREP)
			continue; /* a storage call still refers to this slot and finishes it */
		pcmd_release(pc);
	}
	if (holder) {
		map_del(y, s);
		y->online--;
		api->metric_set(y->m_online, y->online);
		api->pile_release(y->p, s->pile);
		const char *why = strcmp(reason, "idle timeout") == 0 ? "silence" : reason;
		LOG(s, EVCS_LOG_INFO, "offline: %s", why);
		store_fmt(s, "pile.offline", "{\"tenant_id\":%lld,\"pile_id\":%lld,\"ts_ms\":%lld}",
			  (long long)s->tenant, (long long)s->pile_id, (long long)now_ms());
		evcs_field_t f[] = {EVCS_FS("reason", why)};
		publish(s, EVCS_EV_PILE_OFFLINE, 0, f, 1);
	}
	api->conn_set_data(c, NULL);
	sess_unref(s);
}

/* ---- commands from the core --------------------------------------------------------------------- */

static int arg_gun(struct sess *s, const evcs_command_t *c, json_t *a)
{
	int g = c->gun;
	json_t *v = json_object_get(a, "gun");
	if (json_is_integer(v))
		g = (int)json_integer_value(v);
	return g >= 1 && g <= s->ngun ? g : 0;
}

static void start_session_created(int status, const char *result, void *ud)
{
	struct pcmd *pc = ud;
	struct sess *s = pc->s;
	json_t *r = result ? json_loads(result, 0, NULL) : NULL;
	if (s->closed || status != EVCS_OK) {
		if (pc->cmd)
			cmd_fail(pc->cmd, status != EVCS_OK ? status : EVCS_EOFFLINE,
				 status != EVCS_OK ? "the session could not be stored" : "the pile disconnected");
		pcmd_release(pc);
		goto out;
	}
	pc->session_id = json_integer_value(json_object_get(r, "session_id"));
	if (!pc->cmd) { /* the requester is gone (timeout): do not start an order nobody waits for */
		store_fmt(s, "session.stopped",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"trade_no\":\"%s\",\"state\":\"failed\","
			  "\"stop_reason_text\":\"command abandoned before sending\"}",
			  (long long)s->tenant, (long long)s->pile_id, pc->trade_no);
		pcmd_release(pc);
		goto out;
	}
	struct evcs_ykc_msg m;
	msg_init(&m, pc->req_type);
	struct evcs_ykc_remote_start *rs = &m.u.remote_start;
	memcpy(rs->trade_no, pc->trade_no, sizeof rs->trade_no);
	memcpy(rs->pile, s->pile, sizeof s->pile);
	gun_str(rs->gun, pc->gun);
	memcpy(rs->logical_card, pc->logical, sizeof rs->logical_card);
	memcpy(rs->physical_card, pc->pcard, 8);
	rs->balance_yuan = pc->balance;
	memcpy(rs->parallel_no, pc->parallel_no, sizeof rs->parallel_no);
	if (send_msg(s, &m, NULL, pc->seq) != EVCS_OK) {
		cmd_fail(pc->cmd, EVCS_EOFFLINE, "the frame could not be sent");
		pcmd_release(pc);
		goto out;
	}
	pc->state = PC_SENT;
	pcmd_arm(pc, s->y->start_timeout_ms);
out:
	json_decref(r);
	sess_unref(s);
}

static int cmd_start(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a, int parallel)
{
	struct ykc *y = s->y;
	int gn = arg_gun(s, c, a);
	if (!gn) {
		cmd_fail(cmd, EVCS_EINVAL, "gun out of range");
		return EVCS_OK;
	}
	struct gun *g = &s->guns[gn - 1];
	if (g->trade_no[0] || g->status == 3) {
		cmd_fail(cmd, EVCS_EBUSY, "the gun has an open order");
		return EVCS_OK;
	}
	for (int i = 0; i < MAX_PCMD; i++)
		if (s->pcmd[i].state != PC_FREE && s->pcmd[i].kind == PK_START && s->pcmd[i].gun == gn) {
			cmd_fail(cmd, EVCS_EBUSY, "a start is already pending on this gun");
			return EVCS_OK;
		}
	struct pcmd *pc = pcmd_get(s);
	if (!pc) {
		cmd_fail(cmd, EVCS_EBUSY, "too many commands in flight");
		return EVCS_OK;
	}
	pc->kind = PK_START;
	pc->cmd = cmd;
	pc->gun = gn;
	pc->req_type = parallel ? 0xA4 : 0x34;
	pc->answer = parallel ? 0xA3 : 0x33;
	int64_t bal = json_integer_value(json_object_get(a, "balance"));
	if (evcs_ykc_balance_from_money(bal, &pc->balance) < 0) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "balance out of range");
		return EVCS_OK;
	}
	const char *lc = json_string_value(json_object_get(a, "logical_card"));
	snprintf(pc->logical, sizeof pc->logical, "%s",
		 lc && strlen(lc) == 16 && strspn(lc, "0123456789") == 16 ? lc : "0000000000000000");
	const char *pcs = json_string_value(json_object_get(a, "physical_card"));
	if (!pcs)
		pcs = json_string_value(json_object_get(a, "card"));
	if (pcs && hex_to(pcs, pc->pcard, 8) < 0) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "physical_card: 16 hex digits expected");
		return EVCS_OK;
	}
	/* A caller that already recorded the order (the CEC plugin's pending session) passes its
	 * transaction number; the pile must carry that one so session.create below finds that row
	 * instead of adding a second. It must be ours to send: 32 digits, this pile and gun first. */
	const char *given = json_string_value(json_object_get(a, "trade_no"));
	char gs[3];
	gun_str(gs, gn);
	if (given && (strlen(given) != 32 || strspn(given, "0123456789") != 32 || strncmp(given, s->pile, 14) != 0 ||
		      strncmp(given + 14, gs, 2) != 0)) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "trade_no: 32 digits starting with the pile and gun expected");
		return EVCS_OK;
	}
	if (given)
		memcpy(pc->trade_no, given, 33);
	else if (next_trade(s, gn, pc->trade_no) < 0) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EBUSY, "trade-number counter exhausted this second");
		return EVCS_OK;
	}
	if (parallel) {
		const char *pn = json_string_value(json_object_get(a, "parallel_no"));
		if (pn && strlen(pn) == 12 && strspn(pn, "0123456789") == 12)
			memcpy(pc->parallel_no, pn, 13);
		else
			memcpy(pc->parallel_no, pc->trade_no + 16, 12); /* yyMMddHHmmss */
	}
	const char *mode = json_string_value(json_object_get(a, "start_mode"));
	if (!mode)
		mode = json_string_value(json_object_get(a, "mode")); /* the CEC plugin's spelling */
	int64_t op = json_integer_value(json_object_get(a, "operator_user_id"));
	if (!mode)
		mode = op > 0 ? "operator" : "app";
	const char *pseq = json_string_value(json_object_get(a, "partner_seq"));
	char pcard_hex[17], mode_e[32], pseq_e[80];
	hex_of(pc->pcard, 8, pcard_hex);
	int n = snprintf(y->jbuf, sizeof y->jbuf,
			 "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"trade_no\":\"%s\",\"start_mode\":\"%s\","
			 "\"driver_id\":%lld,\"card_id\":%lld,\"operator_user_id\":%lld,\"partner_id\":%lld,"
			 "\"physical_card\":\"%s\",\"partner_seq\":%s%s%s,\"tariff\":%s}",
			 (long long)s->tenant, (long long)s->pile_id, gn, pc->trade_no, jesc(mode_e, sizeof mode_e, mode),
			 (long long)json_integer_value(json_object_get(a, "driver_id")),
			 (long long)json_integer_value(json_object_get(a, "card_id")), (long long)op,
			 (long long)json_integer_value(json_object_get(a, "partner_id")), pcard_hex,
			 pseq ? "\"" : "", pseq ? jesc(pseq_e, sizeof pseq_e, pseq) : "null", pseq ? "\"" : "",
			 s->have_tariff ? s->tariff_json : "null");
	if (n < 0 || (size_t)n >= sizeof y->jbuf) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "arguments too long");
		return EVCS_OK;
	}
	s->refs++;
	if (api->store(y->p, "session.create", y->jbuf, start_session_created, pc) != EVCS_OK) {
		s->refs--;
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EUNAVAIL, "storage refused the session");
	}
	return EVCS_OK;
}

static int card_list(json_t *arr, struct evcs_ykc_card_list *l, size_t max)
{
	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > max)
		return -1;
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (hex_to(json_string_value(json_array_get(arr, i)), l->cards[i], 8) < 0)
			return -1;
	l->n = l->count = (uint8_t)json_array_size(arr);
	return 0;
}

static int on_command(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud)
{
	struct sess *s = ud;
	if (s->closed || s->state != S_ONLINE)
		return EVCS_EOFFLINE;
	json_t *a = c->args_json ? json_loads(c->args_json, 0, NULL) : json_object();
	if (!a)
		a = json_object();
	const char *name = c->name;
	int rc = EVCS_OK;
	if (!strcmp(name, "start") || !strcmp(name, "parallel_start")) {
		int par = name[0] == 'p';
		if (par && s->proto != EVCS_YKC_PROTO_16)
			rc = EVCS_ENOTSUP;
		else
			rc = cmd_start(s, cmd, c, a, par);
		json_decref(a);
		return rc;
	}
	struct evcs_ykc_msg m;
	uint8_t answer = 0;
	int gun = 0, kind = PK_GENERIC;
	memset(&m, 0, sizeof m);
	if (!strcmp(name, "stop")) {
		gun = arg_gun(s, c, a);
		if (!gun)
			goto bad;
		m.type = 0x36;
		memcpy(m.u.pile_gun.pile, s->pile, sizeof s->pile);
		gun_str(m.u.pile_gun.gun, gun);
		answer = 0x35;
		kind = PK_STOP;
	} else if (!strcmp(name, "read_realtime")) {
		gun = arg_gun(s, c, a);
		if (!gun)
			goto bad;
		m.type = 0x12;
		memcpy(m.u.pile_gun.pile, s->pile, sizeof s->pile);
		gun_str(m.u.pile_gun.gun, gun);
		answer = 0x13;
	} else if (!strcmp(name, "set_tariff")) {
		json_t *t = json_object_get(a, "tariff");
		if (t && tariff_load(s, t) < 0)
			goto bad;
		if (!s->have_tariff) {
			json_decref(a);
			cmd_fail(cmd, EVCS_ENOENT, "no tariff for this pile");
			return EVCS_OK;
		}
		if (!pile_idle(s)) {
			s->push_pending = 1;
			json_decref(a);
			cmd_fail(cmd, EVCS_EBUSY, "the pile is charging; the tariff is sent when it is idle");
			return EVCS_OK;
		}
		m.u.tariff = s->tariff;
		memcpy(m.u.tariff.pile, s->pile, sizeof s->pile);
		m.type = 0x58;
		answer = 0x57;
		kind = PK_TARIFF;
	} else if (!strcmp(name, "reboot")) {
		m.type = 0x92;
		memcpy(m.u.reboot.pile, s->pile, sizeof s->pile);
		json_t *v = json_object_get(a, "control");
		m.u.reboot.control = (uint8_t)(json_is_integer(v) ? json_integer_value(v) : 1);
		answer = 0x91;
	} else if (!strcmp(name, "time_sync")) {
		struct pcmd *pc = pcmd_get(s);
		if (!pc) {
			json_decref(a);
			cmd_fail(cmd, EVCS_EBUSY, "too many commands in flight");
			return EVCS_OK;
		}
		pc->cmd = cmd;
		pc->answer = 0x55;
		pc->req_type = 0x56;
		send_time_sync(s, pc->seq);
		pc->state = PC_SENT;
		pcmd_arm(pc, s->y->command_timeout_ms);
		json_decref(a);
		return EVCS_OK;
	} else if (!strcmp(name, "work_params")) {
		m.type = 0x52;
		memcpy(m.u.work_params.pile, s->pile, sizeof s->pile);
		m.u.work_params.disabled = json_is_true(json_object_get(a, "disabled")) ||
					   json_integer_value(json_object_get(a, "disabled")) == 1;
		json_t *v = json_object_get(a, "max_power_pct");
		int64_t pct = json_is_integer(v) ? json_integer_value(v) : 100;
		if (pct < 0 || pct > 100)
			goto bad;
		m.u.work_params.max_power_pct = (uint8_t)pct;
		answer = 0x51;
	} else if (!strcmp(name, "upgrade")) {
		struct evcs_ykc_upgrade *u = &m.u.upgrade;
		m.type = 0x94;
		memcpy(u->pile, s->pile, sizeof s->pile);
		u->pile_model = (uint8_t)json_integer_value(json_object_get(a, "pile_model"));
		u->power_kw = (uint16_t)json_integer_value(json_object_get(a, "power_kw"));
		u->port = (uint16_t)json_integer_value(json_object_get(a, "port"));
		const char *sv = json_string_value(json_object_get(a, "server"));
		const char *us = json_string_value(json_object_get(a, "user"));
		const char *pw = json_string_value(json_object_get(a, "password"));
		const char *pa = json_string_value(json_object_get(a, "path"));
		if (!sv || strlen(sv) > 16 || (us && strlen(us) > 16) || (pw && strlen(pw) > 16) || !pa ||
		    strlen(pa) > 32)
			goto bad;
		snprintf(u->server, sizeof u->server, "%s", sv);
		snprintf(u->user, sizeof u->user, "%s", us ? us : "");
		snprintf(u->password, sizeof u->password, "%s", pw ? pw : "");
		snprintf(u->path, sizeof u->path, "%s", pa);
		json_t *v = json_object_get(a, "control");
		u->control = (uint8_t)(json_is_integer(v) ? json_integer_value(v) : 1);
		v = json_object_get(a, "timeout_min");
		u->timeout_min = (uint8_t)(json_is_integer(v) ? json_integer_value(v) : 10);
		answer = 0x93;
	} else if (!strcmp(name, "card_sync")) {
		json_t *arr = json_object_get(a, "cards");
		struct evcs_ykc_card_sync *cs = &m.u.card_sync;
		m.type = 0x44;
		memcpy(cs->pile, s->pile, sizeof s->pile);
		if (!json_is_array(arr) || !json_array_size(arr) || json_array_size(arr) > EVCS_YKC_SYNC_MAX)
			goto bad;
		for (size_t i = 0; i < json_array_size(arr); i++) {
			json_t *e = json_array_get(arr, i);
			const char *lc = json_string_value(json_array_get(e, 0));
			if (!lc || strlen(lc) != 16 || hex_to(json_string_value(json_array_get(e, 1)),
							      cs->cards[i].physical_card, 8) < 0)
				goto bad;
			memcpy(cs->cards[i].logical_card, lc, 17);
		}
		cs->n = cs->count = (uint8_t)json_array_size(arr);
		answer = 0x43;
	} else if (!strcmp(name, "card_clear") || !strcmp(name, "card_query")) {
		int clear = name[5] == 'c';
		m.type = clear ? 0x46 : 0x48;
		memcpy(m.u.card_list.pile, s->pile, sizeof s->pile);
		if (card_list(json_object_get(a, "cards"), &m.u.card_list,
			      clear ? EVCS_YKC_CLEAR_MAX : EVCS_YKC_QUERY_MAX) < 0)
			goto bad;
		answer = clear ? 0x45 : 0x47;
	} else if (!strcmp(name, "ground_lock")) {
		gun = arg_gun(s, c, a);
		if (!gun)
			goto bad;
		m.type = 0x62;
		memcpy(m.u.ground_lock_command.pile, s->pile, sizeof s->pile);
		gun_str(m.u.ground_lock_command.gun, gun);
		json_t *v = json_object_get(a, "action");
		const char *act = json_string_value(v);
		if (act)
			m.u.ground_lock_command.action = !strcmp(act, "raise") ? 0x55 : !strcmp(act, "lower") ? 0xFF : 0;
		else
			m.u.ground_lock_command.action = (uint8_t)json_integer_value(v);
		if (m.u.ground_lock_command.action != 0x55 && m.u.ground_lock_command.action != 0xFF)
			goto bad;
		answer = 0x63;
	} else if (!strcmp(name, "qr_prefix")) {
		if (s->proto != EVCS_YKC_PROTO_16) {
			json_decref(a);
			return EVCS_ENOTSUP;
		}
		const char *pre = json_string_value(json_object_get(a, "prefix"));
		if (!pre || strlen(pre) > EVCS_YKC_QR_PREFIX_MAX)
			goto bad;
		m.type = 0xF0;
		memcpy(m.u.qr_prefix.pile, s->pile, sizeof s->pile);
		m.u.qr_prefix.qr_format = (uint8_t)json_integer_value(json_object_get(a, "qr_format"));
		m.u.qr_prefix.prefix_len = (uint8_t)strlen(pre);
		memcpy(m.u.qr_prefix.prefix, pre, strlen(pre) + 1);
		answer = 0xF1;
	} else if (!strcmp(name, "balance_update")) {
		gun = arg_gun(s, c, a);
		if (!gun)
			goto bad;
		struct evcs_ykc_balance_update *b = &m.u.balance_update;
		m.type = 0x42;
		memcpy(b->pile, s->pile, sizeof s->pile);
		gun_str(b->gun, gun);
		const char *pcs = json_string_value(json_object_get(a, "physical_card"));
		if (pcs && hex_to(pcs, b->physical_card, 8) < 0)
			goto bad;
		if (evcs_ykc_balance_from_money(json_integer_value(json_object_get(a, "balance")), &b->balance_yuan) < 0)
			goto bad;
		answer = 0x41;
	} else {
		json_decref(a);
		return EVCS_ENOTSUP;
	}
	struct pcmd *pc = pcmd_get(s);
	if (!pc) {
		json_decref(a);
		cmd_fail(cmd, EVCS_EBUSY, "too many commands in flight");
		return EVCS_OK;
	}
	pc->cmd = cmd;
	pc->kind = kind;
	pc->gun = gun;
	pc->answer = answer;
	pc->req_type = m.type;
	if (kind == PK_STOP) {
		struct gun *g = &s->guns[gun - 1];
		/* §1.5: the order is closed as soon as 0x36 is sent */
		g->stopping = 1;
		memcpy(pc->trade_no, g->trade_no, sizeof pc->trade_no);
		const char *by = json_string_value(json_object_get(a, "by"));
		char bye[80];
		store_fmt(s, "session.stop_requested",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"trade_no\":\"%s\",\"by\":\"%s\"}",
			  (long long)s->tenant, (long long)s->pile_id, gun, g->trade_no,
			  jesc(bye, sizeof bye, by ? by : "operator"));
		pc->trade_no[0] = 0; /* 0x35 carries no trade number */
	}
	if (send_msg(s, &m, NULL, pc->seq) != EVCS_OK) {
		pcmd_release(pc);
		json_decref(a);
		cmd_fail(cmd, EVCS_EINVAL, "the frame could not be built");
		return EVCS_OK;
	}
	pc->state = PC_SENT;
	pcmd_arm(pc, s->y->command_timeout_ms);
	json_decref(a);
	return EVCS_OK;
bad:
	json_decref(a);
	cmd_fail(cmd, EVCS_EINVAL, "bad command arguments");
	return EVCS_OK;
}

/* ---- configuration and lifecycle ------------------------------------------------------------------- */

static int parse_listen(struct ykc *y, const char *spec)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", spec);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		char *end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		if (y->nlst >= MAX_LISTENERS) {
			api->log(y->p, EVCS_LOG_ERR, 0, NULL, "listen: at most %d listeners", MAX_LISTENERS);
			return -1;
		}
		enum evcs_ykc_proto proto = EVCS_YKC_PROTO_16;
		char *slash = strrchr(tok, '/');
		if (slash) {
			*slash = 0;
			if (!strcmp(slash + 1, "1.5"))
				proto = EVCS_YKC_PROTO_15;
			else if (strcmp(slash + 1, "1.6") != 0) {
				api->log(y->p, EVCS_LOG_ERR, 0, NULL, "listen: version '%s' is not 1.5 or 1.6", slash + 1);
				return -1;
			}
		}
		char *colon = strrchr(tok, ':');
		if (!colon) {
			api->log(y->p, EVCS_LOG_ERR, 0, NULL, "listen: '%s' is not ADDR:PORT/VERSION", tok);
			return -1;
		}
		*colon = 0;
		char *ep;
		long port = strtol(colon + 1, &ep, 10);
		if (*ep || port < 0 || port > 65535) {
			api->log(y->p, EVCS_LOG_ERR, 0, NULL, "listen: bad port '%s'", colon + 1);
			return -1;
		}
		char *addr = tok;
		if (*addr == '[') {
			addr++;
			char *rb = strchr(addr, ']');
			if (rb)
				*rb = 0;
		}
		struct lst *l = &y->lst[y->nlst];
		l->y = y;
		l->proto = proto;
		evcs_listen_opts_t o = {.size = sizeof o, .addr = addr, .port = (int)port,
					.idle_timeout_ms = (unsigned)y->offline_after_ms,
					.max_per_addr = (unsigned)y->max_conns_per_addr,
					.max_conns = (unsigned)y->max_conns, .max_input = 16384};
		evcs_conn_handlers_t h = {.size = sizeof h, .on_accept = on_accept, .on_read = on_read,
					  .on_close = on_close};
		l->l = api->listen(y->p, &o, &h, l);
		if (!l->l)
			return -1;
		api->log(y->p, EVCS_LOG_NOTICE, 0, NULL, "YKC %s on %s:%d", proto_name(proto), addr,
			 api->listener_port(l->l));
		y->nlst++;
	}
	return y->nlst ? 0 : -1;
}

static int read_config(struct ykc *y)
{
	struct {
		const char *key;
		long long def, min, max;
		long long *out;
	} keys[] = {
	    {"offline_after_ms", 35000, 100, 86400000, &y->offline_after_ms},
	    {"login_timeout_ms", 30000, 100, 3600000, &y->login_timeout_ms},
	    {"max_conns_per_addr", 64, 0, 1000000, &y->max_conns_per_addr},
	    {"max_failed_logins_per_min", 30, 0, 1000000, &y->max_failed_per_min},
	    {"start_timeout_ms", 90000, 100, 600000, &y->start_timeout_ms},
	    {"command_timeout_ms", 60000, 100, 600000, &y->command_timeout_ms},
	    {"time_sync_interval_ms", 86400000, 0, 7 * 86400000LL, &y->sync_interval_ms},
	    {"seen_interval_ms", 30000, 0, 3600000, &y->seen_interval_ms},
	    {"partial_frame_timeout_ms", 10000, 100, 600000, &y->partial_timeout_ms},
	    {"utc_offset_min", 480, -720, 840, &y->utc_offset_min},
	    {"max_conns", 0, 0, 100000000, &y->max_conns},
	};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (api->config_int(y->p, keys[i].key, keys[i].def, keys[i].min, keys[i].max, keys[i].out) != EVCS_OK)
			return -1;
	const char *v = api->config_get(y->p, "nack_short_record");
	y->nack_short_record = !v || !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1");
	v = api->config_get(y->p, "len_compat");
	y->len_compat = v && (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1"));
	evcs_ykc_tolerance_default(&y->tol);
	y->tol.nack_short_record = y->nack_short_record;
	return 0;
}

static int ykc_init(evcs_plugin_t *p, const evcs_api_t *a)
{
	api = a;
	if (!EVCS_API_HAS(a, status_name))
		return EVCS_ENOTSUP;
	struct ykc *y = calloc(1, sizeof *y);
	if (!y)
		return EVCS_ENOMEM;
	y->p = p;
	y->map = calloc(PILE_BUCKETS, sizeof *y->map);
	if (!y->map) {
		free(y);
		return EVCS_ENOMEM;
	}
	api->set_userdata(p, y);
	if (read_config(y) < 0)
		return EVCS_EINVAL;
	y->m_skipped = api->metric_new(p, "evcs_ykc_bytes_skipped_total", "Bytes discarded while resynchronising", EVCS_METRIC_COUNTER);
	y->m_login_ok = api->metric_new(p, "evcs_ykc_logins_total{result=\"accepted\"}", "Pile logins", EVCS_METRIC_COUNTER);
	y->m_login_refused = api->metric_new(p, "evcs_ykc_logins_total{result=\"refused\"}", "Pile logins", EVCS_METRIC_COUNTER);
	y->m_rec_stored = api->metric_new(p, "evcs_ykc_records_total{result=\"stored\"}", "Transaction records", EVCS_METRIC_COUNTER);
	y->m_rec_dup = api->metric_new(p, "evcs_ykc_records_total{result=\"duplicate\"}", "Transaction records", EVCS_METRIC_COUNTER);
	y->m_rec_unacked = api->metric_new(p, "evcs_ykc_records_total{result=\"unacknowledged\"}", "Transaction records", EVCS_METRIC_COUNTER);
	y->m_online = api->metric_new(p, "evcs_ykc_piles_online", "Piles logged in", EVCS_METRIC_GAUGE);
	y->m_frames_out = api->metric_new(p, "evcs_ykc_frames_out_total", "YKC frames sent", EVCS_METRIC_COUNTER);
	const char *listen = api->config_get(p, "listen");
	if (parse_listen(y, listen ? listen : "0.0.0.0:8768/1.6") < 0)
		return EVCS_EINVAL;
	api->bus_subscribe(p, EVCS_EV_TARIFF_CHANGED, EVCS_PRIO_NORMAL, on_tariff_changed, y, &y->tariff_sub);
	return EVCS_OK;
}

static void ykc_cleanup(evcs_plugin_t *p)
{
	struct ykc *y = api ? api->get_userdata(p) : NULL;
	if (!y)
		return;
	/* The core detaches connections only after cleanup: close them now so on_close runs
	 * while our state exists, then free sessions whose storage callbacks will never come
	 * (the core drops a plugin's pending callbacks when it is unloaded). */
	for (;;) {
		struct sess *s = y->all;
		while (s && s->closed)
			s = s->next;
		if (!s)
			break;
		s->refs++; /* on_close may drop the last reference: keep s readable until we looked */
		api->conn_close(s->c, 0, "plugin unloaded");
		if (!s->closed) { /* not closed at once: make sure it never calls back into us */
			api->conn_set_data(s->c, NULL);
			s->closed = 1;
		}
		sess_unref(s);
	}
	while (y->all) {
		struct sess *s = y->all;
		y->all = s->next;
		for (int i = 0; i < MAX_PCMD; i++)
			if (s->pcmd[i].timer)
				api->timer_del(s->pcmd[i].timer);
		free(s->guns);
		free(s->tariff_json);
		free(s);
	}
	if (y->tariff_sub)
		api->bus_unsubscribe(y->tariff_sub);
	free(y->map);
	free(y);
	api->set_userdata(p, NULL);
}

static void ykc_reload(evcs_plugin_t *p)
{
	struct ykc *y = api->get_userdata(p);
	long long keep_offline = y->offline_after_ms;
	if (read_config(y) < 0)
		api->log(p, EVCS_LOG_ERR, 0, NULL, "reload: bad [plugin ykc] values; previous values partly kept");
	if (keep_offline != y->offline_after_ms)
		api->log(p, EVCS_LOG_NOTICE, 0, NULL, "offline_after_ms now %lld for new logins", y->offline_after_ms);
}

static const evcs_plugin_info_t ykc_info = {
    .size = sizeof(evcs_plugin_info_t),
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "ykc",
    .version = PLUGIN_VERSION,
    .description = "YKC (云快充) 1.5/1.6 charger protocol over TCP",
    .init = ykc_init,
    .cleanup = ykc_cleanup,
    .reload = ykc_reload,
    .cli_name = "ykc",
    .cli_summary = "decode | split: YKC frame decoder (JSON per shared/docs/ykc.md section 7)",
    .cli_main = evcs_ykc_cli_main,
};

EVCS_PLUGIN_DECLARE(ykc_info)
