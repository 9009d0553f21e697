/*
 * core.h: the daemon's context object and the internal interfaces between its
 * modules (net, http, plugin loader, daemon lifecycle). Nothing here is part of
 * the plugin ABI; plugins see only <evcs/plugin.h>.
 * Everything in evcs_core_t is touched on the loop thread only.
 */
#ifndef EVCS_CORE_H
#define EVCS_CORE_H

#include <evcs/plugin.h>

#include "bus.h"
#include "config.h"
#include "metrics.h"
#include "worker.h"

struct event_base;
struct event;
struct evhttp;
typedef struct evcs_net evcs_net_t;
typedef struct evcs_http evcs_http_t;
typedef struct evcs_db evcs_db_t;
typedef struct evcs_store evcs_store_t;
typedef struct evcs_script_engine evcs_script_engine_t;

struct evcs_plugin {
	struct evcs_core *core;
	char *name;
	char *path;
	void *dl;
	const evcs_plugin_info_t *info;
	const evcs_conf_section_t *conf; /* into core->conf; refreshed on reload */
	void *userdata;
	int required;
	int initialised;
	evcs_metric_t *m_state;
};

typedef struct evcs_core {
	struct event_base *base;
	evcs_conf_t *conf;
	char *conf_path;
	evcs_bus_t *bus;
	evcs_metrics_t *metrics;
	evcs_workers_t *workers;
	evcs_net_t *net;
	evcs_http_t *http;
	evcs_db_t *db;           /* NULL when no [database] is configured */
	evcs_store_t *store;
	evcs_script_engine_t *scripts;
	struct evcs_plugin **plugins;
	size_t nplugins;
	evcs_api_t api;
	int draining;
	int exit_code;
	int ready;
	char not_ready[160];     /* why /healthz says not ready */
	struct event *sig_ev[4];
	struct event *drain_timer;
	struct event *health_timer;
	long long shutdown_timeout_ms;
	void *api_state; /* api.c */
	struct scripting *scripting; /* scripting.c */
	struct ops_state *store_ops; /* store_ops.c */
	struct service *services;    /* service.c: services offered by plugins (ABI 2) */
	void *plugin_db;             /* plugin_db.c */
	void *api_plugin;            /* api_plugin.c */
	void *session;               /* session.c */
	void *tz;                    /* tz.c */
} evcs_core_t;

/* ---- net.c: listeners and connections for plugins ---- */
evcs_net_t *evcs_net_new(evcs_core_t *core);
void evcs_net_free(evcs_net_t *n);
evcs_listener_t *evcs_net_listen(evcs_net_t *n, struct evcs_plugin *owner,
				 const evcs_listen_opts_t *o, const evcs_conn_handlers_t *h, void *ud);
int evcs_net_listener_port(evcs_listener_t *l);
/* Stop accepting; close every connection after flushing what is queued. */
void evcs_net_drain(evcs_net_t *n);
/* Close everything owned by a plugin (unload). */
void evcs_net_drop_owner(evcs_net_t *n, struct evcs_plugin *owner);
size_t evcs_net_conn_count(evcs_net_t *n);
size_t evcs_net_pending_output(evcs_net_t *n);
struct evbuffer *evcs_net_conn_input(evcs_conn_t *c);
int evcs_net_conn_write(evcs_conn_t *c, const void *d, size_t len);
void evcs_net_conn_close(evcs_conn_t *c, int flush, const char *reason);
const char *evcs_net_conn_peer(evcs_conn_t *c);
const char *evcs_net_conn_peer_addr(evcs_conn_t *c);
void evcs_net_conn_set_data(evcs_conn_t *c, void *d);
void *evcs_net_conn_get_data(evcs_conn_t *c);
void evcs_net_conn_set_idle(evcs_conn_t *c, unsigned ms);
void evcs_net_conn_set_identity(evcs_conn_t *c, int64_t tenant, const char *pile);

/* ---- http.c: the core's HTTP server ---- */
evcs_http_t *evcs_http_new(evcs_core_t *core, char *err, size_t errlen);
void evcs_http_free(evcs_http_t *h);
int evcs_http_port(evcs_http_t *h);
void evcs_http_stop_accepting(evcs_http_t *h);
int evcs_http_route(evcs_http_t *h, const char *owner, const char *method, const char *prefix,
		    evcs_http_handler fn, void *ud);
void evcs_http_drop_owner(evcs_http_t *h, const char *owner);
const char *evcs_http_req_method(evcs_http_req_t *r);
const char *evcs_http_req_path(evcs_http_req_t *r);
const char *evcs_http_req_query(evcs_http_req_t *r, const char *key);
const char *evcs_http_req_header(evcs_http_req_t *r, const char *name);
const char *evcs_http_req_body(evcs_http_req_t *r, size_t *len);
const char *evcs_http_req_peer(evcs_http_req_t *r);
void evcs_http_req_reply(evcs_http_req_t *r, int status, const char *ctype, const void *body,
			 size_t len);
/* JSON error body {"error":{"code":..,"message":..,"field":..}} */
void evcs_http_reply_error(evcs_http_req_t *r, int status, const char *code, const char *field,
			   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- plugin.c: loader and the API table ---- */
void evcs_api_fill(evcs_api_t *api);
/* Load every [plugin NAME] in order. Returns 0, or -1 when a required plugin failed. */
int evcs_plugins_load(evcs_core_t *core);
void evcs_plugins_unload(evcs_core_t *core); /* reverse order */
void evcs_plugins_reload(evcs_core_t *core);
/* For --check-config and evcsctl: resolve and open a plugin without init. */
int evcs_plugin_probe(const char *dirs, const char *name, const char *file, char *path_out,
		      size_t pathlen, const evcs_plugin_info_t **info, void **dl, char *err,
		      size_t errlen);
const char *evcs_status_str(int status);

/* ---- api.c: the operator REST API under /api/v1/ (needs core->db) ---- */
int evcs_api_init(evcs_core_t *core);
void evcs_api_free(evcs_core_t *core);

/* ---- daemon.c ---- */
/* Where the SQL migrations are: $EVCS_SCHEMA_DIR, else [core] schema_dir, else the
 * installed $(pkgdatadir)/schema. */
const char *evcs_core_schema_dir(const evcs_conf_t *conf);
int evcs_core_start(evcs_core_t *core, const char *conf_path, char *err, size_t errlen);
void evcs_core_shutdown(evcs_core_t *core); /* begin draining */
void evcs_core_free(evcs_core_t *core);
int evcs_core_reload(evcs_core_t *core);
void evcs_core_set_ready(evcs_core_t *core, int ready, const char *why);
/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET, if set */
void evcs_sd_notify(const char *state);

#endif
