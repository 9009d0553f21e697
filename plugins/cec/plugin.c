/*
 * plugin.c: cec.so, the T/CEC 102 interconnect plugin (evcsd as the infrastructure operator).
 *
 * Serves query_token and every query_* interface of parts 2 and 3 under a configurable prefix
 * (default /evcs/v1/; /evcs/v1/<OurOperatorID>/<iface> selects the tenant when one partner
 * OperatorID is configured for several tenants), maps the core's stations, piles and guns to
 * CEC objects, drives remote start/stop through the hook bus, and feeds the push outbox
 * (outbox.c) from bus events. Reference: /work/shared/docs/cec.md; README.md beside this file.
 * The modules are listed in cec_plugin.h; this one reads the configuration, loads partners
 * (partner_file, then the stored rows), their tenants' catalogs and the outbox, and owns the
 * plugin's lifecycle.
 *
 * Contract: uses only <evcs/plugin.h>, ABI 2: its own tables (schema/, applied by `evcsd
 * --migrate`) through the data layer (storage.c), its operator routes /api/v1/partners...
 * through api_route (partner_api.c). Loop thread only. Every request is answered with a CEC envelope and
 * HTTP 200, Ret per §2.3 in the §4 check order; bad input never yields 500. Partners and the
 * station catalog are cached in memory and refreshed every refresh_interval seconds; gun
 * status follows EVCS_EV_GUN_STATUS live.
 */
#include "cec_plugin.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t cec_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void load_all(cec_ctx_t *c);

/* ---- loading: partner_file -> partners -> catalogs -> outbox ---------------------------------- */

static void catalog_done(int status, const char *result, void *ud);

struct cat_ctx {
	cec_ctx_t *c;
	int64_t tenant_id;
};

static void maybe_ready(cec_ctx_t *c)
{
	for (cec_tenant_cat_t *t = c->tenants; t; t = t->next)
		if (t->loading)
			return;
	if (!c->ready) {
		c->ready = true;
		CEC_LOG(c, EVCS_LOG_NOTICE, 0, "ready: serving %s", c->prefix);
		cec_outbox_load(c);
	}
	cec_outbox_kick(c);
}

static void catalog_done(int status, const char *result, void *ud)
{
	struct cat_ctx *k = ud;
	cec_ctx_t *c = k->c;
	cec_tenant_cat_t *t = cec_tenant_cat(c, k->tenant_id, false);
	free(k);
	if (!t)
		return;
	t->loading = false;
	if (status != EVCS_OK)
		CEC_LOG(c, EVCS_LOG_ERR, t->tenant_id, "cannot load stations for CEC: %s", c->api->status_name(status));
	else {
		json_t *j = json_loads(result, 0, NULL);
		if (j) {
			json_decref(t->cat);
			t->cat = j;
		}
	}
	maybe_ready(c);
}

static void partners_done(int status, const char *result, void *ud)
{
	cec_ctx_t *c = ud;
	if (status != EVCS_OK) {
		CEC_LOG(c, EVCS_LOG_ERR, 0, "cannot load CEC partners: %s %s", c->api->status_name(status), result ? result : "");
		return; /* the refresh timer tries again */
	}
	json_t *j = json_loads(result, 0, NULL);
	size_t i;
	json_t *o;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next)
		pt->active = false; /* gone from the list = disabled; kept for queued entries */
	json_array_foreach(json_object_get(j, "partners"), i, o)
	{
		int64_t id = json_integer_value(json_object_get(o, "id"));
		cec_partner_rt_t *pt = cec_partner_by_id(c, id);
		if (!pt) {
			pt = calloc(1, sizeof *pt);
			if (!pt || !(pt->tokens = evcs_cec_tokens_new())) {
				free(pt);
				continue;
			}
			pt->id = id;
			pt->next = c->partners;
			c->partners = pt;
		}
		cec_partner_update(c, pt, o);
	}
	json_decref(j);
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next) {
		cec_tenant_cat_t *t = cec_tenant_cat(c, pt->tenant_id, true);
		if (!t || t->loading)
			continue;
		struct cat_ctx *k = malloc(sizeof *k);
		if (!k)
			continue;
		*k = (struct cat_ctx){c, t->tenant_id};
		char a[64];
		snprintf(a, sizeof a, "{\"tenant_id\":%lld}", (long long)t->tenant_id);
		t->loading = true;
		if (cec_store(c, "cec.catalog", a, catalog_done, k) != EVCS_OK) {
			t->loading = false;
			free(k);
		}
	}
	maybe_ready(c);
}

static void load_partners(cec_ctx_t *c) { cec_store(c, "cec.partner.list", "{}", partners_done, c); }

struct file_ctx {
	cec_ctx_t *c;
	size_t left;
	int failed;
};

static void file_put_done(int status, const char *result, void *ud)
{
	struct file_ctx *f = ud;
	if (status != EVCS_OK) {
		CEC_LOG(f->c, EVCS_LOG_ERR, 0, "partner_file entry refused: %s %s", f->c->api->status_name(status),
		    result ? result : "");
		f->failed++;
	}
	if (--f->left == 0) {
		/* A refused entry (database not reachable yet, say) is retried at the next refresh. */
		f->c->file_pending = f->failed > 0;
		load_partners(f->c);
		free(f);
	}
}

/* partner_file: {"partners":[{tenant_id, operator_id, our_operator_id, ..., stations:[ids],
 * profile?: "orise", profile_flags?: {...}}]}. Entries are upserted with cec.partner.put (the
 * outbox needs their database ids); profile settings are kept here in memory. */
static int load_partner_file(cec_ctx_t *c, const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	json_t *arr = json_object_get(j, "partners");
	if (!j || !json_is_array(arr)) {
		CEC_LOG(c, EVCS_LOG_ERR, 0, "partner_file %s: %s (line %d)", path, j ? "no \"partners\" array" : je.text,
		    je.line);
		json_decref(j);
		return -1;
	}
	struct file_ctx *f = calloc(1, sizeof *f);
	if (!f) {
		json_decref(j);
		return -1;
	}
	f->c = c;
	f->left = 1; /* guard until every put is submitted */
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		char key[64];
		snprintf(key, sizeof key, "%lld:%s", (long long)json_integer_value(json_object_get(o, "tenant_id")),
			 cec_js(o, "operator_id"));
		json_t *prof = json_object();
		if (json_object_get(o, "profile"))
			json_object_set(prof, "profile", json_object_get(o, "profile"));
		if (json_object_get(o, "profile_flags"))
			json_object_set(prof, "profile_flags", json_object_get(o, "profile_flags"));
		json_object_set_new(c->file_profiles, key, prof);
		json_t *args = json_deep_copy(o);
		json_object_del(args, "profile");
		json_object_del(args, "profile_flags");
		char *s = json_dumps(args, JSON_COMPACT);
		json_decref(args);
		f->left++;
		if (!s || cec_store(c, "cec.partner.put", s, file_put_done, f) != EVCS_OK) {
			f->left--;
			CEC_LOG(c, EVCS_LOG_ERR, 0, "partner_file %s: entry %zu not stored", path, i);
		}
		free(s);
	}
	json_decref(j);
	file_put_done(EVCS_OK, NULL, f);
	return 0;
}

static void load_all(cec_ctx_t *c)
{
	const char *pf = c->api->config_get(c->p, "partner_file");
	if (pf && *pf) {
		if (load_partner_file(c, pf) == 0)
			return;
	}
	load_partners(c);
}

static void refresh_tick(void *ud)
{
	cec_ctx_t *c = ud;
	if (c->file_pending)
		load_all(c);
	else
		load_partners(c);
}

static void prune_tick(void *ud)
{
	cec_ctx_t *c = ud;
	int64_t now = cec_now_ms() / 1000;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next)
		evcs_cec_tokens_prune(pt->tokens, now);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int read_config(cec_ctx_t *c)
{
	const char *pre = c->api->config_get(c->p, "prefix");
	if (!pre || !*pre)
		pre = "/evcs/v1/";
	if (pre[0] != '/' || strlen(pre) + 2 > sizeof c->prefix) {
		CEC_LOG(c, EVCS_LOG_ERR, 0, "prefix must start with '/': %s", pre);
		return -1;
	}
	snprintf(c->prefix, sizeof c->prefix, "%s%s", pre, pre[strlen(pre) - 1] == '/' ? "" : "/");
	long long v;
	struct {
		const char *k;
		long long def, min, max;
		long long *out;
		long long mul;
	} keys[] = {
	    {"charge_status_interval", 60, 0, 3600, &c->status_interval_ms, 1000},
	    {"retry_base_ms", 1000, 10, 600000, &c->retry_base_ms, 1},
	    {"retry_max_ms", 300000, 10, 86400000, &c->retry_max_ms, 1},
	    {"refresh_interval", 60, 1, 86400, &c->refresh_ms, 1000},
	    {"command_timeout_ms", 15000, 100, 600000, &c->command_timeout_ms, 1},
	    {"http_timeout_ms", 10000, 100, 600000, &c->http_timeout_ms, 1},
	    {"max_inflight", 4, 1, 256, &c->max_inflight, 1},
	    {"check_hour", 1, -1, 23, &c->check_hour, 1},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (c->api->config_int(c->p, keys[i].k, keys[i].def, keys[i].min, keys[i].max, &v) != EVCS_OK)
			return -1;
		*keys[i].out = v * keys[i].mul;
	}
	return 0;
}

static void first_check(void *ud)
{
	cec_ctx_t *c = ud;
	c->first_check = NULL; /* one-shot timers free themselves */
	cec_check_tick(c);
}

static void ctx_free(cec_ctx_t *c);
static const evcs_api_t *cec_api;
static int cec_start(cec_ctx_t *c);

static int cec_init(evcs_plugin_t *p, const evcs_api_t *api)
{
	/* ABI 2: our tables through the data layer, our operator routes through api_route. */
	if (!EVCS_API_HAS(api, db_query) || !EVCS_API_HAS(api, api_route)) {
		if (EVCS_API_HAS(api, log))
			api->log(p, EVCS_LOG_ERR, 0, NULL, "needs a core with plugin ABI 2 (data layer and operator routes)");
		return EVCS_ENOTSUP;
	}
	cec_ctx_t *c = calloc(1, sizeof *c);
	if (!c)
		return EVCS_ENOMEM;
	c->p = p;
	c->api = api;
	cec_api = api;
	api->set_userdata(p, c);
	int r = cec_start(c);
	if (r != EVCS_OK) {
		api->set_userdata(p, NULL);
		ctx_free(c); /* cleanup() is not called after a failed init */
	}
	return r;
}

static int cec_start(cec_ctx_t *c)
{
	evcs_plugin_t *p = c->p;
	const evcs_api_t *api = c->api;
	if (read_config(c) < 0)
		return EVCS_EINVAL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->file_profiles = json_object();
	c->http = cec_http_new(api->event_base(p), (long)c->http_timeout_ms);
	if (!c->http)
		return EVCS_ENOMEM;
	int r;
	c->m_req = api->metric_new(p, "evcs_cec_requests_total", "CEC requests served", EVCS_METRIC_COUNTER);
	c->m_err = api->metric_new(p, "evcs_cec_request_errors_total", "CEC requests answered with Ret != 0",
				   EVCS_METRIC_COUNTER);
	c->m_push_ok = api->metric_new(p, "evcs_cec_pushes_total", "CEC pushes acknowledged", EVCS_METRIC_COUNTER);
	c->m_push_fail = api->metric_new(p, "evcs_cec_push_failures_total", "CEC push attempts that failed",
					 EVCS_METRIC_COUNTER);
	c->m_outbox = api->metric_new(p, "evcs_cec_outbox_queued", "CEC pushes not yet acknowledged", EVCS_METRIC_GAUGE);
	r = cec_partner_api_init(c);
	if (r != EVCS_OK)
		return r;
	r = api->http_route(p, "POST", c->prefix, cec_http_handler, c);
	if (r != EVCS_OK) {
		CEC_LOG(c, EVCS_LOG_ERR, 0, "cannot route %s: %s", c->prefix, api->status_name(r));
		return r;
	}
	if (cec_notify_subscribe(c) != EVCS_OK)
		return EVCS_ERR;
	c->refresh_timer = api->timer_add(p, (unsigned)c->refresh_ms, 1, refresh_tick, c);
	c->check_timer = api->timer_add(p, 60000, 1, cec_check_tick, c);
	c->prune_timer = api->timer_add(p, 600000, 1, prune_tick, c);
	/* First reconciliation check shortly after start-up, then every minute. */
	c->first_check = api->timer_add(p, 2000, 0, first_check, c);
	load_all(c);
	return EVCS_OK;
}

static void ctx_free(cec_ctx_t *c)
{
	if (!c)
		return;
	c->stopping = true;
	const evcs_api_t *api = c->api;
	evcs_timer_t *timers[] = {c->refresh_timer, c->check_timer, c->prune_timer, c->first_check};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			api->timer_del(timers[i]);
	cec_outbox_free(c);
	cec_store_free(c);
	cec_http_free(c->http);
	while (c->partners) {
		cec_partner_rt_t *pt = c->partners;
		c->partners = pt->next;
		evcs_cec_tokens_free(pt->tokens);
		free(pt->stations);
		free(pt->token);
		free(pt);
	}
	while (c->tenants) {
		cec_tenant_cat_t *t = c->tenants;
		c->tenants = t->next;
		json_decref(t->cat);
		free(t);
	}
	while (c->live) {
		cec_live_gun_t *l = c->live;
		c->live = l->next;
		free(l);
	}
	while (c->sessions) {
		cec_sess_t *s = c->sessions;
		c->sessions = s->next;
		free(s);
	}
	json_decref(c->file_profiles);
	free(c);
}

/* The table is handed to init() only; cleanup() needs it to find its state (set once, never
 * changed: the one static of this plugin). */

static void cec_cleanup(evcs_plugin_t *p)
{
	/* The core drops our routes, subscriptions and pending store callbacks after this;
	 * timers and transfers are ours to stop. */
	if (cec_api)
		ctx_free(cec_api->get_userdata(p));
}

static void cec_reload(evcs_plugin_t *p) { (void)p; }

extern const evcs_migration_t cec_migrations[];

const evcs_plugin_info_t cec_info = {
    .size = sizeof(evcs_plugin_info_t),
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "cec",
    .version = "1.0.0",
    .description = "T/CEC 102 interconnect: serve partner platforms and push notifications to them",
    .init = cec_init,
    .cleanup = cec_cleanup,
    .reload = cec_reload,
    /* schema/NNN_*.sql, compiled in by plugin.am (evcs-embed-sql) */
    .migrations = cec_migrations,
    /* installation-wide reads: every tenant's active partners at start-up and the undelivered
     * outbox rows at restart (storage.c); everything else is tenant-scoped */
    .flags = EVCS_PLUGIN_F_PLATFORM_DB,
};

EVCS_PLUGIN_DECLARE(cec_info)

