/*
 * plugins/ykc/simplugin.c: ykcsim.so, the YKC charger simulator (sim.h) inside evcsd, so an
 * operator can try a station without hardware. The plugin owns its operator-API routes (ABI 2,
 * api->api_route; authentication, roles, tenant binding and JSON errors are the core's):
 *
 *   POST   /api/v1/stations/{station_id}/simulated-piles  {"guns":1..4, "protocol":"1.5"|"1.6"}
 *          (operator) registers a pile row on the station for the caller's tenant (the tenant's
 *          pile quota applies, serialised on the tenant row) with a generated serial "99" + 12
 *          digits and one connector per gun, audit "pile.simulate", then starts a simulated
 *          charger for it; 201 {serial, pile_id, station_id, simulator:{serial, state}}. When
 *          the simulator cannot run it (max_piles reached, serial already simulated, start
 *          failure) the row is deleted again (audit "pile.simulate_failed"), so no unreachable
 *          pile stays: 409 simulator_full / conflict, 502 simulator_error.
 *   GET    /api/v1/simulated-piles  (read-only) {piles:[{serial, state, logged_in, ready,
 *          charging, guns, protocol}], max_piles}: the caller's tenant's piles only
 *   DELETE /api/v1/simulated-piles/{serial}  (operator) stops the simulation (the charger goes
 *          offline), audit "pile.simulate_stop", 204; the pile row and its history stay
 *          (DELETE /api/v1/piles/{id} removes the row). Another tenant's pile answers 404.
 * Without this plugin the routes do not exist: the core answers 404 not_found ("no such
 * resource") and the served openapi.json does not list them (plugins/ykc/SIMULATOR.md).
 *
 * Contract
 * - Each simulated pile belongs to the tenant that created it; list and remove see only that
 *   tenant's piles. The pile row is the same one POST /api/v1/piles writes (protocol 'ykc',
 *   vendor 'evcs-sim'): the simulated pile dials the ykc listener in `target` and logs in like a
 *   charger, nothing in ykc.so knows it is simulated.
 * - One evcs_sim_t per simulated pile (a few KiB each; max_piles bounds them), so removing a
 *   pile is evcs_sim_free of its own simulator and the library needs no removal call.
 * - Config [plugin ykcsim]: target = ADDR:PORT/VER[, ADDR:PORT/VER] (required; the ykc
 *   listeners to dial, VER 1.5 or 1.6, one host), max_piles (100), speed (1: simulated seconds
 *   per real second), power_kw (60), source_addrs (optional A.B.C.D[-A.B.C.D]: each new pile
 *   binds the next address, round robin, so many piles stay under ykc's per-address cap).
 *   A pile's wall clock runs in its tenant's time zone (api->tenant_utc_offset at creation).
 * - Needs a core with ABI 2 (api_route, req_*, db_*); refuses to start on an older one.
 * - Threading: everything on the core's loop thread (api->event_base). Requests in flight are
 *   listed on the plugin state; cleanup frees them and every simulator (closing its connection)
 *   before the core frees the base (the core drops an unloaded plugin's callbacks).
 */
#include <evcs/plugin.h>

#include "sim.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SERIAL_TRIES 5 /* a random serial that is taken: draw again, this many times */
#define MAX_API_GUNS 4

static const evcs_api_t *api;

struct spile {
	struct spile *next;
	evcs_sim_t *sim;
	struct simp *sp;
	int64_t tenant;
	char serial[15];
	unsigned guns;
	enum evcs_ykc_proto proto;
	const char *state; /* static string */
	int logged_in;
};

struct simreq;

struct simp {
	evcs_plugin_t *p;
	char host[64];
	uint16_t port16, port15; /* 0 = no listener of that version */
	unsigned max_piles, speed, power_w;
	uint32_t src_first, src_last, src_next;
	struct spile *piles;
	unsigned npiles;
	evcs_metric_t *m_piles;
	struct simreq *reqs; /* requests waiting for the database */
};

/* One operator-API request in flight (waits for the data layer). */
struct simreq {
	struct simreq *next, *prev;
	struct simp *s;
	evcs_api_req_t *r;
	int64_t tenant, station_id, pile_id;
	unsigned guns;
	int tries;
	enum evcs_ykc_proto proto;
	char serial[15];
	int fail_status;         /* why the simulator could not run the new pile */
	const char *fail_reason; /* static text */
};

/* ---- config ------------------------------------------------------------------------------ */

/* "127.0.0.1:8768/1.6, 127.0.0.1:8767/1.5" */
static int parse_target(struct simp *s, const char *v)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", v);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		char *end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		int ver = 16;
		char *slash = strchr(tok, '/');
		if (slash) {
			*slash = 0;
			if (!strcmp(slash + 1, "1.5"))
				ver = 15;
			else if (strcmp(slash + 1, "1.6") != 0)
				return -1;
		}
		char *colon = strrchr(tok, ':');
		if (!colon || colon == tok || (size_t)(colon - tok) >= sizeof s->host)
			return -1;
		*colon = 0;
		char *pe;
		long port = strtol(colon + 1, &pe, 10);
		if (*pe || port < 1 || port > 65535)
			return -1;
		if (s->host[0] && strcmp(s->host, tok) != 0)
			return -1; /* the simulator library dials one host */
		snprintf(s->host, sizeof s->host, "%s", tok);
		if (ver == 15)
			s->port15 = (uint16_t)port;
		else
			s->port16 = (uint16_t)port;
	}
	return s->host[0] ? 0 : -1;
}

/* ---- simulator callbacks ----------------------------------------------------------------- */

static void on_sim_log(void *arg, int level, const char *msg)
{
	struct spile *sp = arg;
	api->log(sp->sp->p, level, sp->tenant, sp->serial, "%s", msg);
}

static void on_sim_event(void *arg, const struct evcs_sim_event *ev)
{
	struct spile *sp = arg;
	switch (ev->type) {
	case EVCS_SIM_EV_CONNECTED:
		sp->state = "login";
		break;
	case EVCS_SIM_EV_LOGIN_OK:
		sp->state = "online";
		sp->logged_in = 1;
		api->log(sp->sp->p, EVCS_LOG_INFO, sp->tenant, sp->serial, "simulated pile logged in");
		break;
	case EVCS_SIM_EV_LOGIN_REFUSED:
		sp->state = "refused";
		sp->logged_in = 0;
		api->log(sp->sp->p, EVCS_LOG_WARNING, sp->tenant, sp->serial,
			 "simulated pile refused at login: its serial is not registered (retrying)");
		break;
	case EVCS_SIM_EV_DISCONNECTED:
		sp->state = "disconnected";
		sp->logged_in = 0;
		break;
	default:
		break;
	}
}

/* ---- simulated piles --------------------------------------------------------------------- */

static const char *proto_name(enum evcs_ykc_proto proto)
{
	return proto == EVCS_YKC_PROTO_15 ? "1.5" : "1.6";
}

static struct spile *find(struct simp *s, const char *serial, int64_t tenant)
{
	for (struct spile *p = s->piles; p; p = p->next)
		if (!strcmp(p->serial, serial) && (!tenant || p->tenant == tenant))
			return p;
	return NULL;
}

static uint64_t serial_seed(const char *serial)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a: distinct meter readings per pile */
	for (const char *c = serial; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	return h ? h : 1;
}

static int has_listener(const struct simp *s, enum evcs_ykc_proto proto)
{
	return proto == EVCS_YKC_PROTO_15 ? s->port15 != 0 : s->port16 != 0;
}

/* Start simulating a pile for a tenant. EVCS_OK with *out set, or EVCS_EEXIST (serial already
 * simulated), EVCS_EBUSY (max_piles), EVCS_ENOTSUP (no listener of that version), EVCS_ERR;
 * *why says it in words. */
static int pile_start(struct simp *s, int64_t tenant, const char *serial, unsigned guns,
		      enum evcs_ykc_proto proto, struct spile **out, const char **why)
{
	/* a 1.5 pile on a 1.6 listener would be sent 1.6 frames: only dial a matching listener */
	if (!has_listener(s, proto)) {
		*why = proto == EVCS_YKC_PROTO_15 ? "no 1.5 listener in target" : "no 1.6 listener in target";
		return EVCS_ENOTSUP;
	}
	if (find(s, serial, 0)) {
		*why = "this serial is already simulated";
		return EVCS_EEXIST;
	}
	if (s->npiles >= s->max_piles) {
		*why = "the simulator runs max_piles piles already";
		return EVCS_EBUSY;
	}
	struct spile *sp = calloc(1, sizeof *sp);
	if (!sp) {
		*why = "out of memory";
		return EVCS_ENOMEM;
	}
	sp->sp = s;
	sp->tenant = tenant;
	snprintf(sp->serial, sizeof sp->serial, "%s", serial);
	sp->guns = guns;
	sp->proto = proto;
	sp->state = "connecting";
	struct evcs_sim_config cfg;
	evcs_sim_config_default(&cfg);
	cfg.host = s->host;
	cfg.port = proto == EVCS_YKC_PROTO_15 ? s->port15 : s->port16;
	cfg.speed = s->speed;
	cfg.power_w = s->power_w;
	cfg.seed = serial_seed(serial);
	cfg.log_level = EVCS_SIM_LOG_WARN;
	cfg.log = on_sim_log;
	cfg.on_event = on_sim_event;
	cfg.arg = sp;
	/* the charger's wall clock: its tenant's zone (the library's default when the core has none) */
	int off_s;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (EVCS_API_HAS(api, tenant_utc_offset) &&
	    api->tenant_utc_offset(s->p, tenant, (int64_t)now.tv_sec * 1000, &off_s) == EVCS_OK)
		cfg.tz_offset_min = off_s / 60;
	if (s->src_first) {
		cfg.src_first = cfg.src_last = s->src_next;
		cfg.per_src = 1;
		s->src_next = s->src_next >= s->src_last ? s->src_first : s->src_next + 1;
	}
	sp->sim = evcs_sim_new(api->event_base(s->p), &cfg);
	int r = sp->sim ? evcs_sim_add_pile(sp->sim, serial, proto, sp->guns) : -ENOMEM;
	if (r >= 0)
		r = evcs_sim_start(sp->sim);
	if (r < 0) {
		api->log(s->p, EVCS_LOG_ERR, tenant, serial, "cannot start the simulated pile: %s",
			 strerror(-r));
		evcs_sim_free(sp->sim);
		free(sp);
		*why = "cannot start the simulated pile";
		return EVCS_ERR;
	}
	sp->next = s->piles;
	s->piles = sp;
	s->npiles++;
	if (s->m_piles)
		api->metric_set(s->m_piles, s->npiles);
	api->log(s->p, EVCS_LOG_NOTICE, tenant, serial,
		 "simulated pile added (%u gun(s), YKC %s, speed x%u)", sp->guns, proto_name(proto),
		 s->speed);
	*out = sp;
	return EVCS_OK;
}

/* Stop and free one simulated pile (its charger disconnects: ykc.so sees it go offline). */
static void pile_stop(struct simp *s, struct spile *sp)
{
	for (struct spile **pp = &s->piles; *pp; pp = &(*pp)->next)
		if (*pp == sp) {
			*pp = sp->next;
			break;
		}
	s->npiles--;
	if (s->m_piles)
		api->metric_set(s->m_piles, s->npiles);
	api->log(s->p, EVCS_LOG_NOTICE, sp->tenant, sp->serial, "simulated pile removed");
	evcs_sim_free(sp->sim);
	free(sp);
}

/* ---- operator-API requests ------------------------------------------------------------------ */

static struct simreq *req_new(struct simp *s, evcs_api_req_t *r)
{
	struct simreq *q = calloc(1, sizeof *q);
	if (!q) {
		api->req_error(r, 503, "unavailable", NULL, "out of memory");
		return NULL;
	}
	q->s = s;
	q->r = r;
	q->tenant = api->req_tenant(r);
	q->next = s->reqs;
	if (s->reqs)
		s->reqs->prev = q;
	s->reqs = q;
	return q;
}

static void req_done(struct simreq *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		q->s->reqs = q->next;
	if (q->next)
		q->next->prev = q->prev;
	free(q);
}

/* Answer with a JSON value (stolen; NULL = no body) and free the request. */
static void reply_json(struct simreq *q, int status, json_t *o)
{
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (o && !txt)
		api->req_error(q->r, 503, "unavailable", NULL, "out of memory");
	else
		api->req_reply(q->r, status, txt);
	free(txt);
	req_done(q);
}

static void reply_error(struct simreq *q, int status, const char *code, const char *field,
			const char *msg)
{
	api->req_error(q->r, status, code, field, msg);
	req_done(q);
}

/* Map why the simulator could not run a pile. */
static void reply_sim_error(struct simreq *q, int status, const char *why)
{
	char msg[160];
	switch (status) {
	case EVCS_EBUSY:
		snprintf(msg, sizeof msg, "the simulator runs its maximum number of piles (max_piles %u)",
			 q->s->max_piles);
		reply_error(q, 409, "simulator_full", NULL, msg);
		break;
	case EVCS_EEXIST:
		reply_error(q, 409, "conflict", "serial", "this serial is already simulated");
		break;
	case EVCS_ENOTSUP:
		snprintf(msg, sizeof msg, "the simulator cannot run this protocol: %s", why);
		reply_error(q, 400, "invalid", "protocol", msg);
		break;
	default:
		snprintf(msg, sizeof msg, "simulator: %s", why ? why : api->status_name(status));
		reply_error(q, 502, "simulator_error", NULL, msg);
	}
}

/* ---- POST /api/v1/stations/{station_id}/simulated-piles ------------------------------------ */
static void create_txn(struct simreq *q);

static void undo_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		    void *ud)
{
	struct simreq *q = ud;
	(void)res;
	(void)nres;
	if (status != EVCS_OK)
		api->log(q->s->p, EVCS_LOG_WARNING, q->tenant, q->serial,
			 "could not delete the pile row of a simulated pile that did not start: %s",
			 errmsg && *errmsg ? errmsg : api->status_name(status));
	reply_sim_error(q, q->fail_status, q->fail_reason);
}

/* The row is committed: run the charger, or take the row back when the simulator cannot. */
static void run_pile(struct simreq *q)
{
	struct spile *sp = NULL;
	const char *why = NULL;
	int st = pile_start(q->s, q->tenant, q->serial, q->guns, q->proto, &sp, &why);
	if (st == EVCS_OK) {
		reply_json(q, 201,
			   json_pack("{s:s, s:I, s:I, s:{s:s, s:s}}", "serial", q->serial, "pile_id",
				     (json_int_t)q->pile_id, "station_id", (json_int_t)q->station_id,
				     "simulator", "serial", sp->serial, "state", sp->state));
		return;
	}
	q->fail_status = st;
	q->fail_reason = why;
	/* nothing will ever log in as this pile: take the row back (connectors cascade) */
	evcs_db_txn_t *t = api->db_txn_new(q->s->p);
	if (!t) {
		reply_sim_error(q, st, why);
		return;
	}
	api->db_txn_add(t, q->tenant, "DELETE FROM piles WHERE tenant_id = ? AND id = ?",
			(evcs_db_param_t[]){EVCS_DB_INT(q->pile_id)}, 1, 0);
	json_t *d = json_pack("{s:s, s:s}", "serial", q->serial, "reason", api->status_name(st));
	char *dj = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	api->req_audit(q->r, t, "pile.simulate_failed", "pile", EVCS_DB_INT(q->pile_id), dj);
	free(dj);
	if (api->db_txn_submit(t, 0, undo_cb, q) != EVCS_OK) {
		api->log(q->s->p, EVCS_LOG_WARNING, q->tenant, q->serial,
			 "could not delete the pile row of a simulated pile that did not start");
		reply_sim_error(q, st, why);
	}
}

static void created_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	struct simreq *q = ud;
	if (status == EVCS_EEXIST && q->tries < SERIAL_TRIES) {
		create_txn(q); /* the random serial was taken: draw another */
		return;
	}
	if (status == EVCS_ENOENT) {
		reply_error(q, 409, "quota_exceeded", NULL, "the tenant's pile quota is used up");
		return;
	}
	if (status != EVCS_OK) {
		api->req_db_error(q->r, status, errmsg);
		req_done(q);
		return;
	}
	if (nres < 2 || !res[1].insert_id) {
		reply_error(q, 500, "internal", NULL, "the new pile row is missing");
		return;
	}
	q->pile_id = (int64_t)res[1].insert_id;
	run_pile(q);
}

static void create_txn(struct simreq *q)
{
	uint64_t v;
	if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
		reply_error(q, 503, "unavailable", NULL, "no random numbers");
		return;
	}
	/* "99" + 12 digits: the range reserved for simulated piles (README, SIMULATOR.md) */
	snprintf(q->serial, sizeof q->serial, "99%012llu", (unsigned long long)(v % 1000000000000ull));
	q->tries++;
	char name[40];
	snprintf(name, sizeof name, "simulated %s", q->serial + 8);
	evcs_db_txn_t *t = api->db_txn_new(q->s->p);
	if (!t) {
		api->req_db_error(q->r, EVCS_EUNAVAIL, "no database");
		req_done(q);
		return;
	}
	/* quota, serialised on the tenant row; ENOENT from here means "quota used up". The marker
	 * is p.tenant_id; te.id is the same tenant, given as a value. */
	api->db_txn_add(t, q->tenant,
			"SELECT te.id FROM tenants te WHERE te.id = ? AND (te.max_piles = 0 OR "
			"te.max_piles > (SELECT COUNT(*) FROM piles p WHERE p.tenant_id = ?)) FOR UPDATE",
			(evcs_db_param_t[]){EVCS_DB_INT(q->tenant)}, 1, EVCS_DB_REQUIRE_ROW);
	api->db_txn_add(t, q->tenant,
			"INSERT INTO piles SET tenant_id = ?, station_id = ?, serial = ?, name = ?, "
			"protocol = 'ykc', protocol_version = ?, vendor = 'evcs-sim', "
			"model = 'simulated', gun_count = ?",
			(evcs_db_param_t[]){EVCS_DB_INT(q->station_id), EVCS_DB_STR(q->serial),
					    EVCS_DB_STR(name),
					    EVCS_DB_INT(q->proto == EVCS_YKC_PROTO_15 ? 15 : 16),
					    EVCS_DB_INT(q->guns)},
			5, 0);
	for (unsigned g = 1; g <= q->guns; g++)
		api->db_txn_add(t, q->tenant,
				"INSERT INTO connectors SET tenant_id = ?, pile_id = ?, gun_no = ?",
				(evcs_db_param_t[]){EVCS_DB_REFID(1), EVCS_DB_INT(g)}, 2, 0);
	json_t *d = json_pack("{s:s, s:I, s:i, s:s}", "serial", q->serial, "station_id",
			      (json_int_t)q->station_id, "guns", (int)q->guns, "protocol",
			      proto_name(q->proto));
	char *dj = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	api->req_audit(q->r, t, "pile.simulate", "pile", EVCS_DB_REFID(1), dj);
	free(dj);
	int r = api->db_txn_submit(t, 0, created_cb, q);
	if (r != EVCS_OK) {
		api->req_db_error(q->r, r, "");
		req_done(q);
	}
}

static void station_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	struct simreq *q = ud;
	if (status != EVCS_OK) {
		api->req_db_error(q->r, status, errmsg);
		req_done(q);
		return;
	}
	if (nres < 1 || res[0].nrows != 1) {
		reply_error(q, 404, "not_found", NULL, "no such station");
		return;
	}
	create_txn(q);
}

/* A positive decimal id, or 0. */
static int64_t parse_id(const char *v)
{
	if (!v || !*v || strlen(v) > 18 || strspn(v, "0123456789") != strlen(v))
		return 0;
	return strtoll(v, NULL, 10);
}

static void route_create(evcs_api_req_t *r, void *ud)
{
	struct simp *s = ud;
	int64_t station = parse_id(api->req_param(r, "station_id"));
	if (!station) {
		api->req_error(r, 404, "not_found", NULL, "no such station");
		return;
	}
	size_t len = 0;
	const char *body = api->req_body(r, &len);
	json_t *b = json_loadb(body ? body : "{}", body ? len : 2, 0, NULL);
	if (!json_is_object(b)) { /* the core has checked it already */
		json_decref(b);
		api->req_error(r, 400, "bad_json", "body", "request body must be a JSON object");
		return;
	}
	const char *k, *field = NULL, *code = "invalid";
	char msg[128] = "";
	json_t *v;
	json_object_foreach(b, k, v)
	{
		if (strcmp(k, "guns") && strcmp(k, "protocol")) {
			code = "unknown_field";
			field = k;
			snprintf(msg, sizeof msg, "unknown field %.100s", k);
			break;
		}
	}
	json_t *g = json_object_get(b, "guns"), *p = json_object_get(b, "protocol");
	if (!field && g &&
	    (!json_is_integer(g) || json_integer_value(g) < 1 || json_integer_value(g) > MAX_API_GUNS)) {
		field = "guns";
		snprintf(msg, sizeof msg, "guns must be an integer 1..%d", MAX_API_GUNS);
	}
	if (!field && p &&
	    (!json_is_string(p) ||
	     (strcmp(json_string_value(p), "1.5") != 0 && strcmp(json_string_value(p), "1.6") != 0))) {
		field = "protocol";
		snprintf(msg, sizeof msg, "protocol must be \"1.5\" or \"1.6\"");
	}
	if (field) {
		api->req_error(r, 400, code, field, msg);
		json_decref(b);
		return;
	}
	enum evcs_ykc_proto proto =
	    p && !strcmp(json_string_value(p), "1.5") ? EVCS_YKC_PROTO_15 : EVCS_YKC_PROTO_16;
	unsigned guns = g ? (unsigned)json_integer_value(g) : 1;
	json_decref(b);
	/* before any row is written: a pile this simulator could never dial is refused now */
	if (!has_listener(s, proto)) {
		api->req_error(r, 400, "invalid", "protocol",
			       proto == EVCS_YKC_PROTO_15 ? "the simulator has no 1.5 listener in target"
							  : "the simulator has no 1.6 listener in target");
		return;
	}
	struct simreq *q = req_new(s, r);
	if (!q)
		return;
	q->station_id = station;
	q->guns = guns;
	q->proto = proto;
	int rc = api->db_query(s->p, q->tenant, "SELECT id FROM stations WHERE tenant_id = ? AND id = ?",
			       (evcs_db_param_t[]){EVCS_DB_INT(station)}, 1, 0, station_cb, q);
	if (rc != EVCS_OK) {
		api->req_db_error(r, rc, "");
		req_done(q);
	}
}

/* ---- GET /api/v1/simulated-piles ------------------------------------------------------------ */
static void route_list(evcs_api_req_t *r, void *ud)
{
	struct simp *s = ud;
	int64_t tenant = api->req_tenant(r);
	json_t *arr = json_array();
	for (struct spile *sp = s->piles; sp; sp = sp->next) {
		if (sp->tenant != tenant)
			continue;
		struct evcs_sim_stats st;
		evcs_sim_get_stats(sp->sim, &st);
		json_array_append_new(
		    arr, json_pack("{s:s, s:s, s:b, s:b, s:i, s:i, s:s}", "serial", sp->serial, "state",
				   sp->state, "logged_in", sp->logged_in, "ready", st.ready > 0, "charging",
				   (int)st.charging, "guns", (int)sp->guns, "protocol",
				   proto_name(sp->proto)));
	}
	json_t *o = json_pack("{s:o, s:i}", "piles", arr, "max_piles", (int)s->max_piles);
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (txt)
		api->req_reply(r, 200, txt);
	else
		api->req_error(r, 503, "unavailable", NULL, "out of memory");
	free(txt);
}

/* ---- DELETE /api/v1/simulated-piles/{serial} ---------------------------------------------- */
static void removed_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	struct simreq *q = ud;
	(void)res;
	(void)nres;
	if (status != EVCS_OK) /* the simulation did stop; only the audit row is missing */
		api->log(q->s->p, EVCS_LOG_WARNING, q->tenant, q->serial,
			 "audit of a simulated pile removal failed: %s",
			 errmsg && *errmsg ? errmsg : api->status_name(status));
	reply_json(q, 204, NULL);
}

static void route_delete(evcs_api_req_t *r, void *ud)
{
	struct simp *s = ud;
	const char *serial = api->req_param(r, "serial");
	struct spile *sp = serial && strlen(serial) == 14 && strspn(serial, "0123456789") == 14
			       ? find(s, serial, api->req_tenant(r))
			       : NULL;
	if (!sp) {
		api->req_error(r, 404, "not_found", NULL, "no such simulated pile");
		return;
	}
	struct simreq *q = req_new(s, r);
	if (!q)
		return;
	snprintf(q->serial, sizeof q->serial, "%s", serial);
	pile_stop(s, sp);
	evcs_db_txn_t *t = api->db_txn_new(s->p);
	int rc = t ? api->req_audit(r, t, "pile.simulate_stop", "pile", EVCS_DB_STR(q->serial), NULL)
		   : EVCS_EUNAVAIL;
	if (t)
		rc = api->db_txn_submit(t, 0, removed_cb, q);
	if (rc != EVCS_OK)
		removed_cb(rc, NULL, 0, "", q);
}

/* ---- OpenAPI operations (served inside /api/v1/openapi.json) ----------------------------- */
#define ERR_RESP(code, text)                                                                       \
	"\"" code "\":{\"description\":\"" text "\",\"content\":{\"application/json\":{\"schema\":" \
	"{\"$ref\":\"#/components/schemas/Error\"}}}}"
#define AUTH_RESPS                                                                                 \
	ERR_RESP("401", "missing or bad token") "," ERR_RESP("403", "role not allowed, or tenant inactive")
#define TENANT_PARAM "{\"$ref\":\"#/components/parameters/TenantHeader\"}"
#define SIM_PILE_SCHEMA                                                                            \
	"{\"type\":\"object\",\"properties\":{\"serial\":{\"type\":\"string\"},\"state\":{\"type\":"  \
	"\"string\",\"enum\":[\"connecting\",\"login\",\"online\",\"refused\",\"disconnected\"],"       \
	"\"description\":\"last connection event of the simulated charger\"},\"logged_in\":{\"type\":" \
	"\"boolean\"},\"ready\":{\"type\":\"boolean\",\"description\":\"logged in and holding a "       \
	"billing model (can charge)\"},\"charging\":{\"type\":\"integer\",\"description\":\"guns "      \
	"charging now\"},\"guns\":{\"type\":\"integer\"},\"protocol\":{\"type\":\"string\",\"enum\":"  \
	"[\"1.5\",\"1.6\"]}}}"

static const char openapi_create[] =
    "{\"summary\":\"Add a simulated pile to a station (charger simulator plugin ykcsim)\","
    "\"description\":\"Minimum role: operator. Served by the ykcsim plugin (absent, 404, when "
    "it is not loaded). Registers a pile row on the station for the caller's tenant (pile quota "
    "applies) with a generated serial \\\"99\\\" + 12 digits and one connector per gun, then "
    "starts a simulated YKC charger for it. The simulated pile logs in to the ykc listener like "
    "real hardware: use the normal pile commands (start, stop) and see its sessions. When the "
    "simulator cannot run the pile the row is deleted again.\","
    "\"parameters\":[{\"name\":\"station_id\",\"in\":\"path\",\"required\":true,\"schema\":"
    "{\"type\":\"integer\",\"format\":\"int64\"}}," TENANT_PARAM "],"
    "\"requestBody\":{\"required\":false,\"content\":{\"application/json\":{\"schema\":{\"type\":"
    "\"object\",\"properties\":{\"guns\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":4,"
    "\"default\":1},\"protocol\":{\"type\":\"string\",\"enum\":[\"1.5\",\"1.6\"],\"default\":"
    "\"1.6\"}}},\"example\":{\"guns\":1,\"protocol\":\"1.6\"}}}},"
    "\"responses\":{\"201\":{\"description\":\"created and started\",\"content\":"
    "{\"application/json\":{\"schema\":{\"type\":\"object\",\"properties\":{\"serial\":{\"type\":"
    "\"string\"},\"pile_id\":{\"type\":\"integer\",\"format\":\"int64\"},\"station_id\":{\"type\":"
    "\"integer\",\"format\":\"int64\"},\"simulator\":{\"type\":\"object\",\"description\":"
    "\"the simulator's view: {serial, state}\"}}}}}},"
    ERR_RESP("400", "bad input (error.field names it)") "," AUTH_RESPS ","
    ERR_RESP("404", "no such station (also another tenant's)") ","
    ERR_RESP("409", "simulator full (error.code simulator_full), pile quota used up "
		    "(quota_exceeded)") ","
    ERR_RESP("502", "the simulator failed") "," ERR_RESP("503", "database unavailable or busy")
    "}}";

static const char openapi_list[] =
    "{\"summary\":\"The caller's tenant's simulated piles and their state\","
    "\"description\":\"Minimum role: read-only. Served by the ykcsim plugin (absent, 404, when it "
    "is not loaded).\","
    "\"parameters\":[" TENANT_PARAM "],"
    "\"responses\":{\"200\":{\"description\":\"OK\",\"content\":{\"application/json\":{\"schema\":"
    "{\"type\":\"object\",\"properties\":{\"piles\":{\"type\":\"array\",\"items\":" SIM_PILE_SCHEMA
    "},\"max_piles\":{\"type\":\"integer\",\"description\":\"the simulator's limit (all tenants "
    "together)\"}}}}}}," AUTH_RESPS "}}";

static const char openapi_delete[] =
    "{\"summary\":\"Stop a simulated pile\","
    "\"description\":\"Minimum role: operator. Served by the ykcsim plugin (absent, 404, when "
    "it is not loaded). The simulated charger disconnects (the pile goes offline); its pile row, "
    "sessions and history stay (DELETE /api/v1/piles/{pile_id} removes the row). Another tenant's "
    "simulated pile answers 404.\","
    "\"parameters\":[{\"name\":\"serial\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":"
    "\"string\",\"pattern\":\"^[0-9]{14}$\"},\"example\":\"99000000000001\"}," TENANT_PARAM "],"
    "\"responses\":{\"204\":{\"description\":\"done, no body\"}," AUTH_RESPS ","
    ERR_RESP("404", "no such simulated pile (also another tenant's)") ","
    ERR_RESP("503", "database unavailable or busy") "}}";

static int register_routes(struct simp *s)
{
	const evcs_api_route_t routes[] = {
	    {.size = sizeof(evcs_api_route_t), .method = "POST",
	     .pattern = "/api/v1/stations/{station_id}/simulated-piles",
	     .min_role = EVCS_ROLE_OPERATOR, .handler = route_create, .ud = s,
	     .openapi = openapi_create},
	    {.size = sizeof(evcs_api_route_t), .method = "GET", .pattern = "/api/v1/simulated-piles",
	     .min_role = EVCS_ROLE_READ_ONLY, .handler = route_list, .ud = s, .openapi = openapi_list},
	    {.size = sizeof(evcs_api_route_t), .method = "DELETE",
	     .pattern = "/api/v1/simulated-piles/{serial}", .min_role = EVCS_ROLE_OPERATOR,
	     .handler = route_delete, .ud = s, .openapi = openapi_delete},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		int r = api->api_route(s->p, &routes[i]);
		if (r != EVCS_OK) {
			api->log(s->p, EVCS_LOG_ERR, 0, NULL, "cannot register %s %s: %s", routes[i].method,
				 routes[i].pattern, api->status_name(r));
			return r;
		}
	}
	return EVCS_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void sim_free(struct simp *s)
{
	while (s->piles) {
		struct spile *sp = s->piles;
		s->piles = sp->next;
		evcs_sim_free(sp->sim);
		free(sp);
	}
	while (s->reqs) { /* unanswered at unload: the core discards those requests */
		struct simreq *q = s->reqs;
		s->reqs = q->next;
		free(q);
	}
	free(s);
}

static int sim_configure(struct simp *s, evcs_plugin_t *p)
{
	const char *target = api->config_get(p, "target");
	if (!target || parse_target(s, target) < 0) {
		api->log(p, EVCS_LOG_ERR, 0, NULL,
			 "[plugin ykcsim] target must be ADDR:PORT/1.6 (and/or ADDR:PORT/1.5) of the ykc "
			 "listener(s) to dial, one host; got %s",
			 target ? target : "nothing");
		return EVCS_EINVAL;
	}
	long long mp, sp, kw;
	if (api->config_int(p, "max_piles", 100, 1, 100000, &mp) != EVCS_OK ||
	    api->config_int(p, "speed", 1, 1, 3600, &sp) != EVCS_OK ||
	    api->config_int(p, "power_kw", 60, 1, 1000, &kw) != EVCS_OK)
		return EVCS_EINVAL;
	s->max_piles = (unsigned)mp;
	s->speed = (unsigned)sp;
	s->power_w = (unsigned)kw * 1000;
	const char *src = api->config_get(p, "source_addrs");
	if (src && *src) {
		if (evcs_sim_parse_addr_range(src, &s->src_first, &s->src_last) < 0) {
			api->log(p, EVCS_LOG_ERR, 0, NULL,
				 "[plugin ykcsim] source_addrs must be A.B.C.D or A.B.C.D-A.B.C.D, got %s", src);
			return EVCS_EINVAL;
		}
		s->src_next = s->src_first;
	}
	return EVCS_OK;
}

static int sim_init(evcs_plugin_t *p, const evcs_api_t *a)
{
	api = a;
	if (!EVCS_API_HAS(a, api_route) || !EVCS_API_HAS(a, req_audit) ||
	    !EVCS_API_HAS(a, db_txn_submit)) {
		a->log(p, EVCS_LOG_ERR, 0, NULL,
		       "this core has no plugin API routes or data layer (ABI 2 needed, core has %u.%u)",
		       (unsigned)a->abi_major, (unsigned)a->abi_minor);
		return EVCS_ENOTSUP;
	}
	struct simp *s = calloc(1, sizeof *s);
	if (!s)
		return EVCS_ENOMEM;
	s->p = p;
	int r = sim_configure(s, p);
	if (r == EVCS_OK)
		r = register_routes(s); /* the core drops them again when init fails */
	if (r != EVCS_OK) {
		/* cleanup is not called after a failed init */
		sim_free(s);
		return r;
	}
	s->m_piles = api->metric_new(p, "evcs_ykcsim_piles", "simulated piles running",
				     EVCS_METRIC_GAUGE);
	api->set_userdata(p, s);
	api->log(p, EVCS_LOG_INFO, 0, NULL,
		 "simulator ready: dials %s (1.6 port %u, 1.5 port %u), max_piles %u, speed x%u", s->host,
		 s->port16, s->port15, s->max_piles, s->speed);
	return EVCS_OK;
}

static void sim_cleanup(evcs_plugin_t *p)
{
	struct simp *s = api ? api->get_userdata(p) : NULL;
	if (!s)
		return;
	sim_free(s);
	api->set_userdata(p, NULL);
}

static const evcs_plugin_info_t info = {
    .size = sizeof(evcs_plugin_info_t),
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "ykcsim",
    .version = "2.0",
    .description = "YKC charger simulator: simulated piles on demand (operator-API routes "
		   "/api/v1/.../simulated-piles)",
    .init = sim_init,
    .cleanup = sim_cleanup,
};

EVCS_PLUGIN_DECLARE(info)
