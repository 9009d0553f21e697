/*
 * plugin.c: the plugin loader and the API table handed to plugins.
 *
 * Plugins are loaded in the order of their [plugin NAME] sections with
 * dlopen(RTLD_NOW | RTLD_LOCAL): every symbol resolves at load time (a plugin
 * that needs a core symbol it should not use fails here, visibly), and plugins
 * cannot see each other's symbols. The entry point is negotiated mosquitto
 * style (the core passes its ABI version), and the ABI major must match.
 * A failed init unloads the plugin: the daemon stops if it was required and
 * goes on otherwise. Cleanup runs in reverse load order.
 */
#include "abi2.h"
#include "core.h"
#include "log.h"
#include "store.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const status_names[] = {EVCS_STATUS_NAMES};

const char *evcs_status_str(int status)
{
	if (status == EVCS_OK)
		return "ok";
	if (status == EVCS_DEFER)
		return "defer";
	int i = -status + 1; /* -1 -> 2 ("error") */
	if (status < 0 && (size_t)i < sizeof status_names / sizeof *status_names)
		return status_names[i];
	return "unknown";
}

/* ---- API functions (thin wrappers binding the plugin handle) ---------- */

__attribute__((format(printf, 5, 6))) static void api_log(evcs_plugin_t *p, int level,
							    int64_t tenant, const char *pile,
							    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evcs_logv(level, p ? p->name : "plugin", tenant, pile, fmt, ap);
	va_end(ap);
}

static const char *api_config_get(evcs_plugin_t *p, const char *key)
{
	return evcs_conf_sget(p->conf, key);
}

static int api_config_int(evcs_plugin_t *p, const char *key, long long def, long long min,
			  long long max, long long *out)
{
	char err[256];
	if (evcs_conf_sint(p->conf, p->core->conf->path, key, def, min, max, out, err, sizeof err) <
	    0) {
		evcs_err(p->name, "%s", err);
		return EVCS_EINVAL;
	}
	return EVCS_OK;
}

static void api_set_userdata(evcs_plugin_t *p, void *ud) { p->userdata = ud; }
static void *api_get_userdata(evcs_plugin_t *p) { return p->userdata; }
static const char *api_plugin_name(evcs_plugin_t *p) { return p->name; }
static struct event_base *api_event_base(evcs_plugin_t *p) { return p->core->base; }

struct evcs_timer {
	struct event *ev;
	void (*cb)(void *);
	void *ud;
	int repeat;
};

#include <event2/event.h>

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evcs_timer *t = arg;
	int repeat = t->repeat;
	void (*cb)(void *) = t->cb;
	void *ud = t->ud;
	if (!repeat) {
		/* one-shot timers free themselves before the callback, so the callback
		 * may not (and need not) call timer_del */
		event_free(t->ev);
		free(t);
	}
	cb(ud);
}

static evcs_timer_t *api_timer_add(evcs_plugin_t *p, unsigned ms, int repeat,
				   void (*cb)(void *), void *ud)
{
	if (!cb)
		return NULL;
	struct evcs_timer *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->cb = cb;
	t->ud = ud;
	t->repeat = repeat;
	t->ev = event_new(p->core->base, -1, repeat ? EV_PERSIST : 0, timer_cb, t);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (!t->ev || event_add(t->ev, &tv) < 0) {
		if (t->ev)
			event_free(t->ev);
		free(t);
		return NULL;
	}
	return t;
}

static void api_timer_del(evcs_timer_t *t)
{
	if (!t)
		return;
	event_free(t->ev);
	free(t);
}

static int api_work_submit(evcs_plugin_t *p, void (*work)(void *), void (*done)(void *), void *ud)
{
	return evcs_workers_submit(p->core->workers, work, done, ud);
}

static evcs_listener_t *api_listen(evcs_plugin_t *p, const evcs_listen_opts_t *o,
				   const evcs_conn_handlers_t *h, void *ud)
{
	return evcs_net_listen(p->core->net, p, o, h, ud);
}

static int api_http_route(evcs_plugin_t *p, const char *method, const char *prefix,
			  evcs_http_handler h, void *ud)
{
	if (!p->core->http)
		return EVCS_ENOTSUP;
	/* /api/v1/ is the operator API's: authenticated, documented routes go through
	 * api->api_route; a raw route there would bypass both */
	if (prefix && !strncmp(prefix, "/api/v1", 7) && (prefix[7] == '/' || prefix[7] == 0)) {
		evcs_err(p->name, "http_route %s: /api/v1/ belongs to the operator API; use "
				  "api_route (authenticated) or a prefix of your own",
			 prefix);
		return EVCS_EINVAL;
	}
	return evcs_http_route(p->core->http, p->name, method, prefix, h, ud);
}

static int api_bus_subscribe(evcs_plugin_t *p, uint32_t type, int prio, evcs_bus_cb cb, void *ud,
			     evcs_sub_t **out)
{
	return evcs_bus_subscribe(p->core->bus, type, prio, cb, ud, p->name, out);
}

static int api_bus_publish(evcs_plugin_t *p, const evcs_event_t *ev)
{
	return evcs_bus_publish(p->core->bus, ev, p->name);
}

static int api_pile_claim(evcs_plugin_t *p, int64_t tenant, const char *pile, evcs_cmd_handler h,
			  void *ud)
{
	return evcs_bus_pile_claim(p->core->bus, p->name, tenant, pile, h, ud);
}

static void api_pile_release(evcs_plugin_t *p, const char *pile)
{
	evcs_bus_pile_release(p->core->bus, p->name, pile);
}

static int api_command_send(evcs_plugin_t *p, const evcs_command_t *c, unsigned timeout_ms,
			    evcs_cmd_done done, void *ud)
{
	return evcs_bus_command_send(p->core->bus, c, timeout_ms, done, ud, p->name);
}

static int api_store(evcs_plugin_t *p, const char *op, const char *args, evcs_store_done done,
		     void *ud)
{
	return evcs_store_call(p->core->store, p->name, op, args, done, ud);
}

static evcs_metric_t *api_metric_new(evcs_plugin_t *p, const char *name, const char *help, int kind)
{
	return evcs_metric_new(p->core->metrics, p->name, name, help, kind);
}

void evcs_api_fill(evcs_api_t *a)
{
	memset(a, 0, sizeof *a);
	a->size = sizeof *a;
	a->abi_major = EVCS_ABI_MAJOR;
	a->abi_minor = EVCS_ABI_MINOR;
	a->log = api_log;
	a->config_get = api_config_get;
	a->config_int = api_config_int;
	a->set_userdata = api_set_userdata;
	a->get_userdata = api_get_userdata;
	a->plugin_name = api_plugin_name;
	a->event_base = api_event_base;
	a->timer_add = api_timer_add;
	a->timer_del = api_timer_del;
	a->work_submit = api_work_submit;
	a->listen = api_listen;
	a->listener_port = evcs_net_listener_port;
	a->conn_input = evcs_net_conn_input;
	a->conn_write = evcs_net_conn_write;
	a->conn_close = evcs_net_conn_close;
	a->conn_peer = evcs_net_conn_peer;
	a->conn_peer_addr = evcs_net_conn_peer_addr;
	a->conn_set_data = evcs_net_conn_set_data;
	a->conn_get_data = evcs_net_conn_get_data;
	a->conn_set_idle_timeout = evcs_net_conn_set_idle;
	a->conn_set_identity = evcs_net_conn_set_identity;
	a->http_route = api_http_route;
	a->http_method = evcs_http_req_method;
	a->http_path = evcs_http_req_path;
	a->http_query = evcs_http_req_query;
	a->http_header = evcs_http_req_header;
	a->http_body = evcs_http_req_body;
	a->http_peer = evcs_http_req_peer;
	a->http_reply = evcs_http_req_reply;
	a->bus_subscribe = api_bus_subscribe;
	a->bus_unsubscribe = evcs_bus_unsubscribe;
	a->bus_publish = api_bus_publish;
	a->event_str = evcs_event_get_str;
	a->event_int = evcs_event_get_int;
	a->pile_claim = api_pile_claim;
	a->pile_release = api_pile_release;
	a->command_send = api_command_send;
	a->command_reply = evcs_bus_command_reply;
	a->store = api_store;
	a->metric_new = api_metric_new;
	a->metric_add = evcs_metric_add;
	a->metric_set = evcs_metric_set;
	a->status_name = evcs_status_str;
	/* ABI 2: each module fills its own entries (abi2.h) */
	evcs_plugin_db_fill(a);
	evcs_api_plugin_fill(a);
	evcs_service_fill(a);
	evcs_session_fill(a);
	evcs_tz_fill(a);
}

/* ---- loading ---------------------------------------------------------- */

static int valid_plugin_name(const char *n)
{
	if (!n || !*n || strlen(n) > 64)
		return 0;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
			return 0;
	return 1;
}

int evcs_plugin_probe(const char *dirs, const char *name, const char *file, char *path_out,
		      size_t pathlen, const evcs_plugin_info_t **info, void **dl, char *err,
		      size_t errlen)
{
	char fname[256];
	snprintf(fname, sizeof fname, "%s", file && *file ? file : "");
	if (!*fname)
		snprintf(fname, sizeof fname, "%s.so", name);
	path_out[0] = 0;
	if (fname[0] == '/') {
		snprintf(path_out, pathlen, "%s", fname);
	} else {
		/* search the colon-separated plugin_dir list in order */
		const char *d = dirs && *dirs ? dirs : EVCS_PLUGINDIR;
		while (*d) {
			const char *e = strchr(d, ':');
			size_t dl_ = e ? (size_t)(e - d) : strlen(d);
			char cand[1024];
			snprintf(cand, sizeof cand, "%.*s/%s", (int)dl_, d, fname);
			struct stat st;
			if (dl_ && stat(cand, &st) == 0) {
				snprintf(path_out, pathlen, "%s", cand);
				break;
			}
			d += dl_ + (e ? 1 : 0);
		}
		if (!path_out[0]) {
			snprintf(err, errlen, "plugin %s: %s not found in plugin_dir '%s'", name, fname,
				 dirs && *dirs ? dirs : EVCS_PLUGINDIR);
			return EVCS_ENOENT;
		}
	}
	void *h = dlopen(path_out, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "plugin %s: cannot load %s: %s", name, path_out, dlerror());
		return EVCS_ERR;
	}
	evcs_plugin_entry_fn entry;
	*(void **)&entry = dlsym(h, EVCS_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		snprintf(err, errlen, "plugin %s: %s has no %s symbol (not an evcsd plugin?)", name,
			 path_out, EVCS_PLUGIN_ENTRY_SYMBOL);
		dlclose(h);
		return EVCS_EINVAL;
	}
	const evcs_plugin_info_t *in = entry(EVCS_ABI_MAJOR, EVCS_ABI_MINOR);
	if (!in) {
		snprintf(err, errlen, "plugin %s: %s refused to load on core ABI %d.%d", name, path_out,
			 EVCS_ABI_MAJOR, EVCS_ABI_MINOR);
		dlclose(h);
		return EVCS_ENOTSUP;
	}
	if (in->size < offsetof(evcs_plugin_info_t, reload) || in->abi_major < EVCS_ABI_MAJOR_OLDEST ||
	    in->abi_major > EVCS_ABI_MAJOR) {
		snprintf(err, errlen,
			 "plugin %s: %s was built for plugin ABI %u.%u, this core implements %d.%d "
			 "and loads plugins of ABI %d to %d (rebuild the plugin against this evcsd)",
			 name, path_out, in->abi_major, in->abi_minor, EVCS_ABI_MAJOR,
			 EVCS_ABI_MINOR, EVCS_ABI_MAJOR_OLDEST, EVCS_ABI_MAJOR);
		dlclose(h);
		return EVCS_ENOTSUP;
	}
	if (!in->name || !in->version || !in->init) {
		snprintf(err, errlen, "plugin %s: %s has an incomplete descriptor (name/version/init)",
			 name, path_out);
		dlclose(h);
		return EVCS_EINVAL;
	}
	*info = in;
	*dl = h;
	return EVCS_OK;
}

static void plugin_free(struct evcs_plugin *p)
{
	if (!p)
		return;
	if (p->dl)
		dlclose(p->dl);
	free(p->name);
	free(p->path);
	free(p);
}

/* Undo everything a plugin registered, after cleanup or a failed init. */
static void plugin_detach(evcs_core_t *core, struct evcs_plugin *p)
{
	evcs_bus_unsubscribe_owner(core->bus, p->name);
	evcs_bus_release_owner(core->bus, p->name);
	evcs_net_drop_owner(core->net, p);
	if (core->http)
		evcs_http_drop_owner(core->http, p->name);
	evcs_store_drop_owner(core->store, p->name);
	evcs_metrics_drop_owner(core->metrics, p->name);
	evcs_service_drop_owner(core, p);
	evcs_api_plugin_drop_owner(core, p);
	evcs_session_drop_owner(core, p);
	evcs_plugin_db_drop_owner(core, p);
}

int evcs_plugins_load(evcs_core_t *core)
{
	const char *dirs = evcs_conf_get(core->conf, "core", "plugin_dir", EVCS_PLUGINDIR);
	for (size_t i = 0; i < core->conf->nsec; i++) {
		const evcs_conf_section_t *s = &core->conf->sec[i];
		if (strcmp(s->name, "plugin") != 0)
			continue;
		const char *name = s->arg;
		if (evcs_conf_bool(evcs_conf_sget(s, "enabled"), 1) == 0) {
			evcs_info("plugin", "%s disabled in config", name);
			continue;
		}
		int required = evcs_conf_bool(evcs_conf_sget(s, "required"), 1);
		char path[1024], err[512];
		const evcs_plugin_info_t *info = NULL;
		void *dl = NULL;
		if (!valid_plugin_name(name)) {
			evcs_err("plugin", "%s:%d: bad plugin name '%s' (use [a-z0-9_])",
				 core->conf->path, s->line, name);
			if (required)
				return -1;
			continue;
		}
		int r = evcs_plugin_probe(dirs, name, evcs_conf_sget(s, "file"), path, sizeof path,
					  &info, &dl, err, sizeof err);
		if (r != EVCS_OK) {
			evcs_log(required ? EVCS_LOG_ERR : EVCS_LOG_WARNING, "plugin", 0, NULL,
				 "%s%s", err, required ? " (required: stopping)" : " (optional: skipped)");
			if (required)
				return -1;
			continue;
		}
		struct evcs_plugin *p = calloc(1, sizeof *p);
		struct evcs_plugin **np =
		    realloc(core->plugins, (core->nplugins + 1) * sizeof *core->plugins);
		if (!p || !np) {
			free(p);
			dlclose(dl);
			evcs_err("plugin", "out of memory loading %s", name);
			return -1;
		}
		core->plugins = np;
		p->core = core;
		p->name = strdup(name);
		p->path = strdup(path);
		p->dl = dl;
		p->info = info;
		p->conf = s;
		p->required = required;
		if (strcmp(info->name, name) != 0)
			evcs_warn("plugin", "section [plugin %s] loads %s, which calls itself '%s'", name,
				  path, info->name);
		/* its own tables must be current before init (counts as a failed init) */
		int schema_ok = evcs_plugin_db_check_schema(core, p) == EVCS_OK;
		int ir = schema_ok ? info->init(p, &core->api) : EVCS_EINVAL;
		if (ir != EVCS_OK) {
			evcs_log(required ? EVCS_LOG_ERR : EVCS_LOG_WARNING, "plugin", 0, NULL,
				 "plugin %s %s: %s (%s)%s", name, info->version,
				 schema_ok ? "init failed" : "not started, schema mismatch",
				 evcs_status_str(ir),
				 required ? "; required, stopping" : "; optional, unloaded");
			plugin_detach(core, p);
			plugin_free(p);
			if (required)
				return -1;
			continue;
		}
		p->initialised = 1;
		core->plugins[core->nplugins++] = p;
		evcs_notice("plugin", "loaded %s %s (ABI %u.%u) from %s", name, info->version,
			    info->abi_major, info->abi_minor, path);
	}
	return 0;
}

void evcs_plugins_unload(evcs_core_t *core)
{
	while (core->nplugins > 0) {
		struct evcs_plugin *p = core->plugins[--core->nplugins];
		if (p->initialised && p->info->cleanup)
			p->info->cleanup(p);
		plugin_detach(core, p);
		evcs_info("plugin", "unloaded %s", p->name);
		plugin_free(p);
	}
	free(core->plugins);
	core->plugins = NULL;
}

void evcs_plugins_reload(evcs_core_t *core)
{
	for (size_t i = 0; i < core->nplugins; i++) {
		struct evcs_plugin *p = core->plugins[i];
		const evcs_conf_section_t *s = evcs_conf_section(core->conf, "plugin", p->name);
		if (!s) {
			evcs_warn("plugin", "%s is no longer configured; it stays loaded until restart",
				  p->name);
			p->conf = NULL; /* the old section is freed with the old config */
			continue;
		}
		p->conf = s;
		if (p->info->size >= offsetof(evcs_plugin_info_t, cli_name) && p->info->reload)
			p->info->reload(p);
	}
}
