/*
 * plugins/ykc/plugin.c: the YKC (云快充) 1.5/1.6 charger protocol plugin (ykc.so): descriptor,
 * configuration, init/cleanup/reload, and the small helpers every file of the plugin uses.
 *
 * Role: listens on one or more TCP ports, each with its protocol version ("listen =
 * 0.0.0.0:8767/1.5, 0.0.0.0:8768/1.6"), runs the session rules of shared/docs/ykc.md §1 for
 * every pile connection, and turns frames into the core's charging-session calls (session_*,
 * sessions.c), storage operations (api->store, see plugins/STORAGE.md), hook-bus events and
 * answers. Its own table ykc_records comes from its migration schema/001_records.sql. It claims each pile that logs in so
 * operator/partner commands ("start", "stop", "set_tariff", ...) reach it (commands.c).
 * It uses only the API table of <evcs/plugin.h> and the codec (codec.h). The files and what
 * each owns are listed in ykc.h.
 *
 * Threading: everything runs on the core's loop thread.
 * Memory: one struct sess per connection, allocated at accept and freed when the connection
 * is gone and no storage callback still refers to it (refs). The frame path does not
 * allocate: frames are scanned in place in the connection's evbuffer (pulled up to at most two
 * frames' worth), decoded into stack structs, answered from a shared output buffer, and
 * storage arguments are printed into a shared buffer that the core parses before returning;
 * sessions travel as typed structs on the stack. Exceptions, all off the per-frame hot path:
 * login results (parsed JSON), commands, and the JSON of BMS/fault frames handed to
 * event.store.
 * Durability: a transaction record (0x3B) is acknowledged with 0x40 only after
 * api->session_close answered EVCS_OK (committed, with its evidence row). When the database is
 * unavailable no 0x40 is sent: the pile resends.
 */
#include "ykc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PLUGIN_VERSION "1.0"

const evcs_api_t *api;

extern const evcs_migration_t ykc_migrations[]; /* generated from schema/ (evcs-embed-sql) */

/* ---- small helpers ------------------------------------------------------------------------ */

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define LOG(s, lvl, ...) api->log((s)->y->p, (lvl), (s)->tenant, (s)->pile[0] ? (s)->pile : NULL, __VA_ARGS__)

int bit_test_set(uint32_t *bm, uint8_t t)
{
	uint32_t m = 1u << (t & 31);
	int was = (bm[t >> 5] & m) != 0;
	bm[t >> 5] |= m;
	return was;
}

void hex_of(const uint8_t *b, size_t n, char *out)
{
	static const char hx[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = 0;
}

int hex_to(const char *s, uint8_t *b, size_t n)
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

int all_zero(const char *s)
{
	return s && strspn(s, "0") == strlen(s);
}

/* JSON string body for untrusted text: quotes, backslashes and controls escaped, non-ASCII
 * bytes replaced (pile ASCII fields may carry anything). */
const char *jesc(char *dst, size_t cap, const char *src)
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

/* The chargers' UTC offset in seconds at instant t (CP56Time2a and trade numbers carry no zone,
 * §3.3): [plugin ykc] utc_offset_min when it is set, else the tenant's configured zone
 * (api->tenant_utc_offset, DST-correct), else the default of utc_offset_min (480, China). */
static int64_t utc_offset_s(const struct sess *s, time_t t)
{
	const struct ykc *y = s->y;
	int off = 0;
	if (!y->utc_offset_fixed && s->tenant > 0 && EVCS_API_HAS(api, tenant_utc_offset) &&
	    api->tenant_utc_offset(y->p, s->tenant, (int64_t)t * 1000, &off) == EVCS_OK)
		return off;
	return (int64_t)y->utc_offset_min * 60;
}

void local_tm(const struct sess *s, time_t t, struct tm *tm)
{
	time_t l = t + (time_t)utc_offset_s(s, t);
	gmtime_r(&l, tm);
}

int64_t cp56_to_ms(const struct sess *s, const struct evcs_ykc_cp56 *c)
{
	if (c->year == 0 && c->month == 0 && c->mday == 0)
		return 0;
	struct tm tm;
	unsigned ms;
	evcs_ykc_cp56_to_tm(c, &tm, &ms);
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1)
		return 0;
	time_t local = timegm(&tm);
	/* the offset in force at that local time: guess with the offset at `local` read as UTC,
	 * then once more at the instant that guess gives (exact except inside a DST change) */
	time_t utc = local - (time_t)utc_offset_s(s, local);
	utc = local - (time_t)utc_offset_s(s, utc);
	return (int64_t)utc * 1000 + ms % 1000;
}

const char *proto_name(enum evcs_ykc_proto p)
{
	return p == EVCS_YKC_PROTO_16 ? "1.6" : "1.5";
}

/* Two BCD digits of a gun number (1..99). */
void gun_str(char out[3], int g)
{
	out[0] = (char)('0' + (g / 10) % 10);
	out[1] = (char)('0' + g % 10);
	out[2] = 0;
}

int gun_no(const char *g)
{
	if (!g || g[0] < '0' || g[0] > '9' || g[1] < '0' || g[1] > '9')
		return 0;
	return (g[0] - '0') * 10 + (g[1] - '0');
}

const char *stop_reason_text(unsigned r)
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

void count_frame(struct ykc *y, uint8_t type, int outcome)
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

/* ---- storage helpers --------------------------------------------------------------------------- */

static void store_logged(int status, const char *result, void *ud)
{
	struct ykc *y = ud;
	if (status != EVCS_OK)
		api->log(y->p, status == EVCS_EUNAVAIL ? EVCS_LOG_INFO : EVCS_LOG_WARNING, 0, NULL,
			 "storage operation failed (%s): %s", api->status_name(status), result ? result : "");
}

/* Fire-and-forget storage call with args printed into the shared buffer. */
void store_fmt(struct sess *s, const char *op, const char *fmt, ...)
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

int publish(struct sess *s, uint32_t type, int gun, const evcs_field_t *f, size_t n)
{
	evcs_event_t ev = {.size = sizeof ev, .type = type, .tenant_id = s->tenant,
			   .pile = s->pile[0] ? s->pile : NULL, .gun = gun, .fields = f, .nfields = n};
	return api->bus_publish(s->y->p, &ev);
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
	y->utc_offset_fixed = api->config_get(y->p, "utc_offset_min") != NULL;
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
	if (!EVCS_API_HAS(a, session_meter) || !EVCS_API_HAS(a, session_close) ||
	    !EVCS_API_HAS(a, session_open) || !EVCS_API_HAS(a, session_authorize)) {
		if (EVCS_API_HAS(a, log))
			a->log(p, EVCS_LOG_ERR, 0, NULL, "this core has no charging-session calls (ABI 2.0 needed)");
		return EVCS_ENOTSUP;
	}
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
		for (int i = 0; i < MAX_REQ; i++)
			free(s->req[i].job); /* records whose answer the core will never deliver */
		free(s->guns);
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
    .migrations = ykc_migrations,
};

EVCS_PLUGIN_DECLARE(ykc_info)
