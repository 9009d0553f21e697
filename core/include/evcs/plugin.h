/*
 * evcs/plugin.h: the public, versioned plugin ABI of evcsd.
 *
 * A plugin is a shared object exporting one symbol, EVCS_PLUGIN_ENTRY_SYMBOL
 * ("evcs_plugin_entry"). The core calls it with the ABI version it implements;
 * the plugin returns its descriptor (or NULL to refuse). The core refuses a
 * plugin whose abi_major differs from its own, with a log line naming both.
 *
 * Everything the core offers reaches the plugin through the function table
 * `evcs_api_t` handed to init(). The table starts with its own size: a plugin
 * built against a newer header checks EVCS_API_HAS(api, fn) before calling a
 * function added in a later minor version, so it still loads on an older core
 * (Redis-module style). Functions are only ever appended; event and status
 * numbers are never reused.
 *
 * Threading: every callback runs on the core's single event-loop thread, and
 * every api function must be called from it, except the `work` function given
 * to api->work_submit (runs on a worker thread; may call only api->log).
 *
 * Memory: strings and structs passed *into* a callback are borrowed for the
 * duration of that callback. Strings passed *to* the core are copied by it
 * unless a function says otherwise. Nothing the core returns is to be freed by
 * the plugin unless the function says "caller frees (free())".
 *
 * Status convention: 0 (EVCS_OK) success, negative EVCS_E* error; bus
 * subscribers may also return EVCS_DEFER (no opinion) or EVCS_VETO.
 */
#ifndef EVCS_PLUGIN_H
#define EVCS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVCS_ABI_MAJOR 1
#define EVCS_ABI_MINOR 0

#define EVCS_PLUGIN_ENTRY_SYMBOL "evcs_plugin_entry"

/* ---- status codes ---------------------------------------------------- */
enum evcs_status {
	EVCS_OK = 0,
	EVCS_DEFER = 1,      /* bus: no opinion, ask the next subscriber */
	EVCS_ERR = -1,       /* generic failure (reason logged) */
	EVCS_EINVAL = -2,    /* bad argument or bad input */
	EVCS_ENOENT = -3,    /* no such thing (pile, key, route...) */
	EVCS_ETIMEDOUT = -4, /* no answer in time */
	EVCS_EOFFLINE = -5,  /* the pile is not connected */
	EVCS_EBUSY = -6,     /* try later (queue full, pile busy) */
	EVCS_ENOTSUP = -7,   /* not supported by this core/plugin/pile */
	EVCS_VETO = -8,      /* bus: a subscriber refused the event */
	EVCS_ENOMEM = -9,
	EVCS_EEXIST = -10,   /* already registered */
	EVCS_EUNAVAIL = -11, /* backing service (database) unavailable */
	EVCS_EREFUSED = -12, /* the pile answered and refused */
};

/* Short stable name of a status ("ok", "timeout", "offline", ...). */
#define EVCS_STATUS_NAMES                                                                          \
	"ok", "defer", "error", "invalid", "not_found", "timeout", "offline", "busy", "not_supported", \
	    "veto", "no_memory", "exists", "unavailable", "refused"

/* ---- log levels (syslog numbering) ----------------------------------- */
enum evcs_log_level {
	EVCS_LOG_ERR = 3,
	EVCS_LOG_WARNING = 4,
	EVCS_LOG_NOTICE = 5,
	EVCS_LOG_INFO = 6,
	EVCS_LOG_DEBUG = 7,
};

/* ---- opaque handles -------------------------------------------------- */
typedef struct evcs_plugin evcs_plugin_t;     /* one per loaded plugin */
typedef struct evcs_conn evcs_conn_t;         /* one accepted TCP connection */
typedef struct evcs_listener evcs_listener_t; /* one listening socket */
typedef struct evcs_timer evcs_timer_t;
typedef struct evcs_http_req evcs_http_req_t; /* borrowed for the handler call */
typedef struct evcs_sub evcs_sub_t;           /* a bus subscription */
typedef struct evcs_cmd evcs_cmd_t;           /* a command in flight to a pile */
typedef struct evcs_metric evcs_metric_t;
struct evbuffer;                               /* libevent's, for zero-copy input */
struct event_base;

/* ---- hook bus events -------------------------------------------------
 * Numbers are stable and never reused. Each event carries a common header
 * and a flat list of typed fields whose names are documented per event in
 * plugins/README.md (canonical names shared with storage, logs and Lua).
 * Money fields are int64 in 0.00001 yuan, energy int64 in 0.0001 kWh,
 * times int64 unix milliseconds.
 */
enum evcs_event_type {
	EVCS_EV_NONE = 0,
	EVCS_EV_PILE_ONLINE = 1,        /* fields: protocol, version, peer, gun_count */
	EVCS_EV_PILE_OFFLINE = 2,       /* fields: reason */
	EVCS_EV_GUN_STATUS = 3,         /* fields: status, prev_status, plugged, fault */
	EVCS_EV_METER_SAMPLE = 4,       /* fields: trade_no, voltage_dv, current_da, kwh, amount, soc, gun_temp_c */
	EVCS_EV_SESSION_START = 5,      /* vetoable: authorise a start. fields: trade_no, mode, card, vin, driver_id */
	EVCS_EV_SESSION_STARTED = 6,    /* fields: trade_no, result, reason */
	EVCS_EV_SESSION_STOPPED = 7,    /* fields: trade_no, stop_reason, stop_reason_text */
	EVCS_EV_TRANSACTION_CLOSED = 8, /* fields: trade_no, session_id, total_kwh, total_amount, pile_amount, duplicate */
	EVCS_EV_PAYMENT_SETTLED = 9,    /* fields: payment_id, amount, driver_id */
	EVCS_EV_ALARM_RAISED = 10,      /* fields: code, severity, message, alarm_id */
	EVCS_EV_ALARM_CLEARED = 11,     /* fields: code, alarm_id */
	EVCS_EV_COMMAND_REQUESTED = 12, /* vetoable. fields: command, args */
	EVCS_EV_PILE_FAULT = 13,        /* fields: frame, code, detail (BMS/charger error frames) */
	EVCS_EV_TARIFF_CHANGED = 14,    /* fields: tariff_id, model */
	EVCS_EV_CONFIG_RELOADED = 15,   /* no fields */
	EVCS_EV_LOGIN_REFUSED = 16,     /* fields: peer, reason (unknown/unclaimed pile) */
	EVCS_EV__COUNT                  /* one past the last; grows with minor versions */
};

enum evcs_field_kind { EVCS_F_INT = 1, EVCS_F_STR = 2, EVCS_F_BOOL = 3 };

typedef struct evcs_field {
	const char *name;
	int kind; /* enum evcs_field_kind */
	int64_t i; /* INT and BOOL */
	const char *s; /* STR (borrowed) */
} evcs_field_t;

/* Convenience initialisers for stack-built field lists (no allocation). */
#define EVCS_FI(n, v) {(n), EVCS_F_INT, (int64_t)(v), NULL}
#define EVCS_FS(n, v) {(n), EVCS_F_STR, 0, (v)}
#define EVCS_FB(n, v) {(n), EVCS_F_BOOL, (v) ? 1 : 0, NULL}

typedef struct evcs_event {
	uint32_t size;     /* sizeof(evcs_event_t) as the publisher knew it */
	uint32_t type;     /* enum evcs_event_type */
	int64_t tenant_id; /* 0 when unknown */
	const char *pile;  /* pile serial or NULL */
	int gun;           /* gun number, 0 when not gun-specific */
	int64_t ts_ms;     /* when it happened; 0 = now (filled by the core) */
	const evcs_field_t *fields;
	size_t nfields;
	const char *source; /* publishing component; filled by the core */
	void *reserved[4];
} evcs_event_t;

/* A subscriber returns EVCS_OK (handled, continue), EVCS_DEFER (no opinion),
 * or, on a vetoable event, EVCS_VETO (stop dispatch; publish returns VETO).
 * Any other negative value is logged and treated as DEFER. */
typedef int (*evcs_bus_cb)(const evcs_event_t *ev, void *ud);

/* Lower priority numbers run first; equal priorities run in subscribe order. */
#define EVCS_PRIO_FIRST (-1000)
#define EVCS_PRIO_NORMAL 0
#define EVCS_PRIO_LAST 1000

/* ---- TCP connections ------------------------------------------------- */
typedef struct evcs_conn_handlers {
	uint32_t size; /* sizeof(evcs_conn_handlers_t) */
	/* A new connection; return 0 to accept, <0 to close it at once. */
	int (*on_accept)(evcs_conn_t *c, void *ud);
	/* Bytes arrived: read them from api->conn_input(c) (zero copy) and
	 * drain what you consumed. */
	void (*on_read)(evcs_conn_t *c, void *ud);
	/* The connection is gone (peer close, error, timeout, shutdown).
	 * `reason` is a short text. The handle is invalid after return. */
	void (*on_close)(evcs_conn_t *c, const char *reason, void *ud);
	void *reserved[4];
} evcs_conn_handlers_t;

typedef struct evcs_listen_opts {
	uint32_t size;
	const char *addr;         /* "0.0.0.0", "::", "127.0.0.1" */
	int port;                 /* 0 = ephemeral (see api->listener_port) */
	unsigned idle_timeout_ms; /* close after this long with no input (0 = never) */
	unsigned max_per_addr;    /* concurrent connections per source address (0 = no cap) */
	unsigned max_conns;       /* total (0 = no cap) */
	size_t max_input;         /* input buffered before the conn is dropped (0 = 64 KiB) */
	void *reserved[4];
} evcs_listen_opts_t;

/* ---- HTTP routes on the core's server --------------------------------- */
/* Handler answers with api->http_reply exactly once (may be later, from a
 * callback, for asynchronous work: the request stays valid until replied). */
typedef void (*evcs_http_handler)(evcs_http_req_t *req, void *ud);

/* ---- commands to piles -------------------------------------------------
 * A command travels from the requester (operator API, CEC, Lua...) to the
 * plugin that owns the pile (it claimed it with api->pile_claim). The owner's
 * handler gets an evcs_cmd_t and answers with api->command_reply, at once or
 * later; the core enforces the timeout and calls the requester's done
 * callback exactly once. */
typedef struct evcs_command {
	uint32_t size;
	int64_t tenant_id;
	const char *pile;
	int gun;
	const char *name;      /* "start", "stop", "set_tariff", "reboot", "time_sync", ... */
	const char *args_json; /* JSON object text, may be NULL */
	void *reserved[4];
} evcs_command_t;

/* Owner side: return EVCS_OK when the command was sent (reply later), or a
 * negative status to fail it at once (EVCS_ENOTSUP for an unknown name). */
typedef int (*evcs_cmd_handler)(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud);
/* Requester side: status EVCS_OK with the pile's answer as JSON, or an error
 * (EVCS_ETIMEDOUT, EVCS_EOFFLINE, EVCS_EREFUSED...) with a JSON detail. */
typedef void (*evcs_cmd_done)(int status, const char *result_json, void *ud);

/* ---- storage -----------------------------------------------------------
 * Plugins never run SQL. They call named storage operations; arguments and
 * results are JSON objects. The set of operations and their fields is in
 * plugins/README.md ("Storage operations"). The callback runs on the loop. */
typedef void (*evcs_store_done)(int status, const char *result_json, void *ud);

/* ---- metrics ----------------------------------------------------------- */
enum evcs_metric_kind { EVCS_METRIC_COUNTER = 1, EVCS_METRIC_GAUGE = 2 };

/* ---- the API table ----------------------------------------------------- */
typedef struct evcs_api {
	uint32_t size; /* sizeof(evcs_api_t) in the core that filled it */
	uint32_t abi_major, abi_minor;

	/* logging: one line, with component = plugin name, tenant and pile when given */
	void (*log)(evcs_plugin_t *p, int level, int64_t tenant_id, const char *pile,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

	/* own config section ([plugin NAME] keys); NULL when unset */
	const char *(*config_get)(evcs_plugin_t *p, const char *key);
	/* strict integer read: EVCS_OK (out set, or def when unset), EVCS_EINVAL on junk/out of range (logged) */
	int (*config_int)(evcs_plugin_t *p, const char *key, long long def, long long min,
			  long long max, long long *out);

	void (*set_userdata)(evcs_plugin_t *p, void *ud);
	void *(*get_userdata)(evcs_plugin_t *p);
	const char *(*plugin_name)(evcs_plugin_t *p);

	/* the loop itself, for plugins that need raw libevent (e.g. curl multi) */
	struct event_base *(*event_base)(evcs_plugin_t *p);

	/* timers: fire after ms, and then every ms when repeat */
	evcs_timer_t *(*timer_add)(evcs_plugin_t *p, unsigned ms, int repeat,
				   void (*cb)(void *ud), void *ud);
	void (*timer_del)(evcs_timer_t *t);

	/* blocking work off the loop: work(ud) on a worker thread, then done(ud) on the loop */
	int (*work_submit)(evcs_plugin_t *p, void (*work)(void *ud), void (*done)(void *ud),
			   void *ud);

	/* TCP */
	evcs_listener_t *(*listen)(evcs_plugin_t *p, const evcs_listen_opts_t *o,
				   const evcs_conn_handlers_t *h, void *ud);
	int (*listener_port)(evcs_listener_t *l);
	struct evbuffer *(*conn_input)(evcs_conn_t *c);
	int (*conn_write)(evcs_conn_t *c, const void *data, size_t len);
	/* flush=1: close after pending output is written */
	void (*conn_close)(evcs_conn_t *c, int flush, const char *reason);
	const char *(*conn_peer)(evcs_conn_t *c); /* "1.2.3.4:5678" */
	const char *(*conn_peer_addr)(evcs_conn_t *c); /* "1.2.3.4" */
	void (*conn_set_data)(evcs_conn_t *c, void *data);
	void *(*conn_get_data)(evcs_conn_t *c);
	void (*conn_set_idle_timeout)(evcs_conn_t *c, unsigned ms);
	/* label for log lines about this connection (tenant/pile once known) */
	void (*conn_set_identity)(evcs_conn_t *c, int64_t tenant_id, const char *pile);

	/* HTTP: method NULL = any; prefix matched on path segments ("/evcs/v1/") */
	int (*http_route)(evcs_plugin_t *p, const char *method, const char *prefix,
			  evcs_http_handler h, void *ud);
	const char *(*http_method)(evcs_http_req_t *r);
	const char *(*http_path)(evcs_http_req_t *r);    /* decoded path, no query */
	const char *(*http_query)(evcs_http_req_t *r, const char *key); /* decoded; NULL if absent */
	const char *(*http_header)(evcs_http_req_t *r, const char *name);
	const char *(*http_body)(evcs_http_req_t *r, size_t *len); /* NUL-terminated copy */
	const char *(*http_peer)(evcs_http_req_t *r);
	void (*http_reply)(evcs_http_req_t *r, int status, const char *content_type,
			   const void *body, size_t len);

	/* hook bus */
	int (*bus_subscribe)(evcs_plugin_t *p, uint32_t type, int priority, evcs_bus_cb cb,
			     void *ud, evcs_sub_t **out);
	void (*bus_unsubscribe)(evcs_sub_t *s);
	/* synchronous dispatch on the loop; EVCS_OK, or EVCS_VETO when vetoed */
	int (*bus_publish)(evcs_plugin_t *p, const evcs_event_t *ev);
	/* typed field lookups on an event (NULL/def when absent or of another kind) */
	const char *(*event_str)(const evcs_event_t *ev, const char *name);
	int64_t (*event_int)(const evcs_event_t *ev, const char *name, int64_t def);

	/* commands */
	int (*pile_claim)(evcs_plugin_t *p, int64_t tenant_id, const char *pile,
			  evcs_cmd_handler h, void *ud);
	void (*pile_release)(evcs_plugin_t *p, const char *pile);
	int (*command_send)(evcs_plugin_t *p, const evcs_command_t *c, unsigned timeout_ms,
			    evcs_cmd_done done, void *ud);
	void (*command_reply)(evcs_cmd_t *cmd, int status, const char *result_json);

	/* storage */
	int (*store)(evcs_plugin_t *p, const char *op, const char *args_json,
		     evcs_store_done done, void *ud);

	/* metrics: name is the Prometheus name (prefixed evcs_<plugin>_ by convention) */
	evcs_metric_t *(*metric_new)(evcs_plugin_t *p, const char *name, const char *help, int kind);
	void (*metric_add)(evcs_metric_t *m, int64_t delta);
	void (*metric_set)(evcs_metric_t *m, int64_t value);

	const char *(*status_name)(int status);
	/* -- end of ABI 1.0; append only -- */
} evcs_api_t;

/* True when the core's table has the function `fn` (older cores lack newer ones). */
#define EVCS_API_HAS(api, fn)                                                           \
	((api) != NULL && (size_t)(api)->size >= offsetof(evcs_api_t, fn) + sizeof((api)->fn) && \
	 (api)->fn != NULL)

/* ---- the descriptor ---------------------------------------------------- */
typedef struct evcs_plugin_info {
	uint32_t size;      /* sizeof(evcs_plugin_info_t) */
	uint32_t abi_major; /* EVCS_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;
	const char *name;    /* [a-z0-9_]+, unique */
	const char *version; /* plugin's own version */
	const char *description;
	/* init: register listeners, routes, subscriptions. Return 0, or <0 to be unloaded. */
	int (*init)(evcs_plugin_t *p, const evcs_api_t *api);
	/* called once, in reverse load order, also after a failed init is NOT called */
	void (*cleanup)(evcs_plugin_t *p);
	/* SIGHUP: config re-read (config_get sees the new values); optional */
	void (*reload)(evcs_plugin_t *p);
	/* optional evcsctl subcommand: `evcsctl <cli_name> ARGS...`; runs without init,
	 * in the evcsctl process, and returns the process exit status. argv[0] = cli_name. */
	const char *cli_name;
	const char *cli_summary;
	int (*cli_main)(int argc, char **argv);
	void *reserved[8];
} evcs_plugin_info_t;

/* The entry point the core looks up. It receives the core's ABI version and
 * returns the descriptor (or NULL to refuse). The core itself refuses a
 * descriptor whose abi_major differs from its own, and logs both numbers. */
typedef const evcs_plugin_info_t *(*evcs_plugin_entry_fn)(uint32_t core_major, uint32_t core_minor);

#define EVCS_PLUGIN_DECLARE(info_var)                                                      \
	__attribute__((visibility("default"))) const evcs_plugin_info_t *evcs_plugin_entry(   \
	    uint32_t core_major, uint32_t core_minor)                                          \
	{                                                                                      \
		(void)core_major;                                                              \
		(void)core_minor;                                                              \
		return &(info_var);                                                            \
	}

#ifdef __cplusplus
}
#endif
#endif /* EVCS_PLUGIN_H */
