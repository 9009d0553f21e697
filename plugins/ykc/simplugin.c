/*
 * plugins/ykc/simplugin.c: ykcsim.so, the YKC charger simulator (sim.h) inside evcsd, so an
 * operator can try a station without hardware (POST /api/v1/stations/{id}/simulated-piles).
 *
 * Contract
 * - The plugin claims the pseudo pile "@simulator" with tenant 0, so any tenant's requester
 *   reaches it through the ordinary command path (api->command_send / evcs_bus_command_send).
 *   Commands (args and answers are JSON objects):
 *     add_pile    {serial, guns 1..99, protocol "1.5"|"1.6"} -> {serial, state}
 *                 EVCS_EEXIST serial already simulated, EVCS_EBUSY max_piles reached,
 *                 EVCS_EINVAL bad args, EVCS_ENOTSUP no listener of that version in `target`
 *     remove_pile {serial} -> {serial, removed:true}; EVCS_ENOENT unknown (or another tenant's)
 *     list        {} -> {piles:[{serial, state, logged_in, ready, charging, guns, protocol}],
 *                 max_piles}
 *   A pile belongs to the command's tenant_id at add_pile; list and remove_pile from a
 *   requester with a tenant see only that tenant's piles (tenant 0 sees all). The caller
 *   registers the pile row first (the operator API does): the simulated pile then dials the ykc
 *   listener in `target` and behaves exactly like a charger, nothing in ykc.so knows.
 * - One evcs_sim_t per simulated pile (a few KiB each; max_piles bounds them), so removing a
 *   pile is evcs_sim_free of its own simulator and the library needs no removal call.
 * - Config [plugin ykcsim]: target = ADDR:PORT/VER[, ADDR:PORT/VER] (required; the ykc
 *   listeners to dial, VER 1.5 or 1.6, one host), max_piles (100), speed (1: simulated seconds
 *   per real second), power_kw (60), source_addrs (optional A.B.C.D[-A.B.C.D]: each new pile
 *   binds the next address, round robin, so many piles stay under ykc's per-address cap).
 * - Threading: everything on the core's loop thread (api->event_base). cleanup frees every
 *   simulator (closing its connection) before the core frees the base.
 */
#include <evcs/plugin.h>

#include "sim.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_PILE "@simulator"

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

struct simp {
	evcs_plugin_t *p;
	char host[64];
	uint16_t port16, port15; /* 0 = no listener of that version */
	unsigned max_piles, speed, power_w;
	uint32_t src_first, src_last, src_next;
	struct spile *piles;
	unsigned npiles;
	evcs_metric_t *m_piles;
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

/* ---- commands ------------------------------------------------------------------------------ */

static struct spile *find(struct simp *s, const char *serial, int64_t tenant)
{
	for (struct spile *p = s->piles; p; p = p->next)
		if (!strcmp(p->serial, serial) && (!tenant || p->tenant == tenant))
			return p;
	return NULL;
}

static void reply(evcs_cmd_t *cmd, int status, json_t *o)
{
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	api->command_reply(cmd, status, txt);
	free(txt);
	json_decref(o);
}

static void refuse(evcs_cmd_t *cmd, int status, const char *why)
{
	reply(cmd, status, json_pack("{s:s}", "error", why));
}

static uint64_t serial_seed(const char *serial)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a: distinct meter readings per pile */
	for (const char *c = serial; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	return h ? h : 1;
}

static void add_pile(struct simp *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a)
{
	const char *serial = json_string_value(json_object_get(a, "serial"));
	json_t *g = json_object_get(a, "guns");
	const char *pv = json_string_value(json_object_get(a, "protocol"));
	if (!serial || strlen(serial) != 14 || strspn(serial, "0123456789") != 14) {
		refuse(cmd, EVCS_EINVAL, "serial: 14 digits expected");
		return;
	}
	if (g && (!json_is_integer(g) || json_integer_value(g) < 1 || json_integer_value(g) > 99)) {
		refuse(cmd, EVCS_EINVAL, "guns: 1..99 expected");
		return;
	}
	enum evcs_ykc_proto proto = EVCS_YKC_PROTO_16;
	if (pv && !strcmp(pv, "1.5"))
		proto = EVCS_YKC_PROTO_15;
	else if (pv && strcmp(pv, "1.6") != 0) {
		refuse(cmd, EVCS_EINVAL, "protocol: \"1.5\" or \"1.6\" expected");
		return;
	}
	/* a 1.5 pile on a 1.6 listener would be sent 1.6 frames: only dial a matching listener */
	if ((proto == EVCS_YKC_PROTO_15 && !s->port15) || (proto == EVCS_YKC_PROTO_16 && !s->port16)) {
		refuse(cmd, EVCS_ENOTSUP, proto == EVCS_YKC_PROTO_15 ? "no 1.5 listener in target"
								       : "no 1.6 listener in target");
		return;
	}
	if (find(s, serial, 0)) {
		refuse(cmd, EVCS_EEXIST, "this serial is already simulated");
		return;
	}
	if (s->npiles >= s->max_piles) {
		refuse(cmd, EVCS_EBUSY, "the simulator runs max_piles piles already");
		return;
	}
	struct spile *sp = calloc(1, sizeof *sp);
	if (!sp) {
		refuse(cmd, EVCS_ENOMEM, "out of memory");
		return;
	}
	sp->sp = s;
	sp->tenant = c->tenant_id;
	snprintf(sp->serial, sizeof sp->serial, "%s", serial);
	sp->guns = g ? (unsigned)json_integer_value(g) : 1;
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
		api->log(s->p, EVCS_LOG_ERR, c->tenant_id, serial, "cannot start the simulated pile: %s",
			 strerror(-r));
		evcs_sim_free(sp->sim);
		free(sp);
		refuse(cmd, EVCS_ERR, "cannot start the simulated pile");
		return;
	}
	sp->next = s->piles;
	s->piles = sp;
	s->npiles++;
	if (s->m_piles)
		api->metric_set(s->m_piles, s->npiles);
	api->log(s->p, EVCS_LOG_NOTICE, c->tenant_id, serial,
		 "simulated pile added (%u gun(s), YKC %s, speed x%u)", sp->guns,
		 proto == EVCS_YKC_PROTO_15 ? "1.5" : "1.6", s->speed);
	reply(cmd, EVCS_OK, json_pack("{s:s, s:s}", "serial", sp->serial, "state", sp->state));
}

static void remove_pile(struct simp *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a)
{
	const char *serial = json_string_value(json_object_get(a, "serial"));
	struct spile *sp = serial ? find(s, serial, c->tenant_id) : NULL;
	if (!sp) {
		refuse(cmd, EVCS_ENOENT, "no such simulated pile");
		return;
	}
	for (struct spile **pp = &s->piles; *pp; pp = &(*pp)->next)
		if (*pp == sp) {
			*pp = sp->next;
			break;
		}
	s->npiles--;
	if (s->m_piles)
		api->metric_set(s->m_piles, s->npiles);
	api->log(s->p, EVCS_LOG_NOTICE, sp->tenant, sp->serial, "simulated pile removed");
	json_t *o = json_pack("{s:s, s:b}", "serial", sp->serial, "removed", 1);
	evcs_sim_free(sp->sim); /* closes its connection: ykc.so sees a pile going offline */
	free(sp);
	reply(cmd, EVCS_OK, o);
}

static void list_piles(struct simp *s, evcs_cmd_t *cmd, const evcs_command_t *c)
{
	json_t *arr = json_array();
	for (struct spile *sp = s->piles; sp; sp = sp->next) {
		if (c->tenant_id && sp->tenant != c->tenant_id)
			continue;
		struct evcs_sim_stats st;
		evcs_sim_get_stats(sp->sim, &st);
		json_array_append_new(
		    arr, json_pack("{s:s, s:s, s:b, s:b, s:i, s:i, s:s}", "serial", sp->serial, "state",
				   sp->state, "logged_in", sp->logged_in, "ready", st.ready > 0, "charging",
				   (int)st.charging, "guns", (int)sp->guns, "protocol",
				   sp->proto == EVCS_YKC_PROTO_15 ? "1.5" : "1.6"));
	}
	reply(cmd, EVCS_OK, json_pack("{s:o, s:i}", "piles", arr, "max_piles", (int)s->max_piles));
}

static int on_command(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud)
{
	struct simp *s = ud;
	json_t *a = c->args_json ? json_loads(c->args_json, 0, NULL) : json_object();
	if (!json_is_object(a)) {
		json_decref(a);
		refuse(cmd, EVCS_EINVAL, "args must be a JSON object");
		return EVCS_OK;
	}
	int rc = EVCS_OK;
	if (!strcmp(c->name, "add_pile"))
		add_pile(s, cmd, c, a);
	else if (!strcmp(c->name, "remove_pile"))
		remove_pile(s, cmd, c, a);
	else if (!strcmp(c->name, "list"))
		list_piles(s, cmd, c);
	else
		rc = EVCS_ENOTSUP;
	json_decref(a);
	return rc;
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
	struct simp *s = calloc(1, sizeof *s);
	if (!s)
		return EVCS_ENOMEM;
	s->p = p;
	int r = sim_configure(s, p);
	if (r == EVCS_OK) {
		r = api->pile_claim(p, 0, SIM_PILE, on_command, s);
		if (r != EVCS_OK)
			api->log(p, EVCS_LOG_ERR, 0, NULL, "cannot claim %s: %s", SIM_PILE,
				 api->status_name(r));
	}
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
    .version = "1.0",
    .description = "YKC charger simulator: simulated piles on demand (pseudo pile @simulator)",
    .init = sim_init,
    .cleanup = sim_cleanup,
};

EVCS_PLUGIN_DECLARE(info)
