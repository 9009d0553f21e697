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

#define EVCS_ABI_MAJOR 2
#define EVCS_ABI_MINOR 0
/* The oldest plugin ABI major this core still loads. ABI 2 only appended to the
 * ABI 1 tables (and gave two reserved descriptor slots a meaning), so an ABI 1
 * plugin loads unchanged; it simply cannot use what ABI 2 added. */
#define EVCS_ABI_MAJOR_OLDEST 1

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
 * A command travels from the requester (operator API, a partner plugin, Lua...) to the
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

/* ---- named storage operations (ABI 1) -------------------------------------
 * The core's own operations on its tables (pile.login, gun.status, alarm.raise...):
 * arguments and results are JSON objects, listed in plugins/STORAGE.md. The
 * callback runs on the loop. A plugin's own tables go through the data layer
 * (db_* below, ABI 2); sessions through the typed session_* calls (ABI 2). */
typedef void (*evcs_store_done)(int status, const char *result_json, void *ud);


/* ---- data layer (ABI 2) -------------------------------------------------
 * Plugins reach the core's MariaDB data layer: the same worker pool, prepared
 * statements (cached per worker by SQL text), transactions and tenant rule as
 * the core's own code. Nothing blocks the loop: a submit queues a job and the
 * callback runs later on the loop thread, never inside the submit call.
 *
 * Tenant rule: a tenant-scoped statement (db_query, db_txn_add) must contain at
 * least one marker `tenant_id = ?` (qualifiers such as `s.tenant_id = ?` allowed).
 * The core binds the tenant at every marker; the caller's values fill the other
 * placeholders in order, so a plugin can never supply a tenant value itself.
 * SQL without a marker is refused with EVCS_EINVAL before anything is queued.
 * Installation-wide statements (db_query_platform, db_txn_add_platform) are
 * refused with EVCS_ENOTSUP unless the descriptor sets EVCS_PLUGIN_F_PLATFORM_DB.
 *
 * Tables: a plugin creates tables only through its own migrations (descriptor
 * field `migrations`), named `<plugin name>_...`; it may read the core's tables
 * (stations, piles, connectors, sessions...) with tenant-scoped SELECTs, and write
 * them only where that is its job (the simulator registers its simulated piles),
 * tenant-scoped, under the core's constraints and triggers. Sessions are written
 * through the session_* calls, never directly. The data model: schema/README.md.
 *
 * Memory: parameters (strings too) are copied at submit. Results are owned by
 * the core and valid only during the callback.
 *
 * Callback status: EVCS_OK; EVCS_EINVAL bad SQL/arguments; EVCS_EUNAVAIL the
 * database could not be reached in time; EVCS_EEXIST duplicate key (the
 * idempotency signal); EVCS_ENOENT a statement flagged EVCS_DB_REQUIRE_ROW
 * matched no row (the transaction was rolled back); EVCS_ERR any other SQL error
 * (errmsg has the server's message). A submit that returns non-zero (EVCS_EBUSY
 * queue full, EVCS_EUNAVAIL no database configured, EVCS_EINVAL, EVCS_ENOTSUP)
 * never calls the callback. Callbacks of a plugin that was unloaded are dropped.
 */
enum evcs_db_type {
	EVCS_DB_T_NULL = 0,
	EVCS_DB_T_INT = 1,   /* int64 */
	EVCS_DB_T_STR = 2,   /* bytes (utf8mb4 text or binary), len bytes or NUL-terminated */
	EVCS_DB_T_REFID = 3, /* transactions: last insert id of statement number i (0-based) */
};

typedef struct evcs_db_param {
	int type; /* enum evcs_db_type */
	int64_t i;
	const char *s;
	size_t len; /* EVCS_DB_T_STR: SIZE_MAX means strlen(s) */
} evcs_db_param_t;

#define EVCS_DB_INT(v) ((evcs_db_param_t){EVCS_DB_T_INT, (int64_t)(v), NULL, 0})
/* A NULL string pointer binds SQL NULL. */
#define EVCS_DB_STR(v) ((evcs_db_param_t){EVCS_DB_T_STR, 0, (v), SIZE_MAX})
#define EVCS_DB_BYTES(p, n) ((evcs_db_param_t){EVCS_DB_T_STR, 0, (const char *)(p), (n)})
#define EVCS_DB_NULL ((evcs_db_param_t){EVCS_DB_T_NULL, 0, NULL, 0})
#define EVCS_DB_REFID(stmt) ((evcs_db_param_t){EVCS_DB_T_REFID, (int64_t)(stmt), NULL, 0})

/* One per statement. Every value is text as MariaDB prints it (integers in
 * decimal), or NULL for SQL NULL; lens[] gives byte lengths (values are also
 * NUL-terminated). Read it with api->db_cell/db_cell_int/db_col, or directly:
 * the layout is fixed for ABI 2. */
typedef struct evcs_db_result {
	size_t nrows;
	unsigned ncols;
	char **colnames;   /* ncols names */
	char **cells;      /* nrows * ncols, row-major; NULL = SQL NULL */
	size_t *lens;      /* nrows * ncols */
	uint64_t affected; /* INSERT/DELETE: rows affected; UPDATE: rows MATCHED; SELECT: rows */
	uint64_t insert_id;
} evcs_db_result_t;

/* res: one entry per statement (nres), or NULL on failure. errmsg: "" on success.
 * Both valid during the call only. */
typedef void (*evcs_db_cb)(int status, const evcs_db_result_t *res, size_t nres,
			   const char *errmsg, void *ud);

#define EVCS_DB_IDEMPOTENT 0x1u  /* job: safe to run twice (may be retried after a lost connection) */
#define EVCS_DB_REQUIRE_ROW 0x2u /* statement: fail with EVCS_ENOENT when it changes/returns no row */

typedef struct evcs_db_txn evcs_db_txn_t;

/* A plugin's schema: numbered migrations compiled into the plugin (descriptor
 * field `migrations`, an array ended by {0}). Versions start at 1 and are
 * contiguous; each sql is one multi-statement batch, applied by
 * `evcsd --migrate` after the core's own files, plugins in configuration order,
 * and recorded per plugin in plugin_schema_version. At start a plugin whose
 * applied version differs from its highest one is not started: the log says
 * which versions and that `evcsd --migrate` applies them (or, when the database
 * is newer, that the plugin is older than its data). Tables it creates must be
 * named `<descriptor name>_...`; the runner refuses others (RENAME TABLE IF EXISTS
 * old TO <name>_new may adopt a legacy table). The version row is keyed by the
 * descriptor's name. A plugin with migrations needs a [database]. */
typedef struct evcs_migration {
	uint32_t version;
	const char *name; /* "001_partners": for logs and the version table */
	const char *sql;
} evcs_migration_t;

/* descriptor flags (evcs_plugin_info_t.flags) */
#define EVCS_PLUGIN_F_PLATFORM_DB 0x1u /* may run installation-wide statements */

/* ---- operator-API routes (ABI 2) ----------------------------------------
 * A plugin adds routes under /api/v1/ that behave exactly like the core's: the
 * core authenticates the Bearer token, checks the role, binds the request to
 * one tenant (X-Tenant-ID / ?tenant_id= for a platform admin), parses and
 * checks the JSON body, answers JSON errors, and serves the route's OpenAPI
 * operation inside /api/v1/openapi.json. Unauthenticated endpoints (a partner's
 * or payment provider's callbacks) use api->http_route instead, explicitly.
 *
 * The handler answers exactly once with req_reply / req_reply_page / req_error
 * / req_db_error, at once or from a later callback; the request handle stays
 * valid until then. If the server shuts down first, the answer is discarded.
 */
typedef struct evcs_api_req evcs_api_req_t;
typedef void (*evcs_api_handler)(evcs_api_req_t *r, void *ud);

enum evcs_role {
	EVCS_ROLE_READ_ONLY = 1,
	EVCS_ROLE_OPERATOR = 2,
	EVCS_ROLE_TENANT_ADMIN = 3,
	EVCS_ROLE_PLATFORM_ADMIN = 4,
};

#define EVCS_ROUTE_PLATFORM 0x2u   /* installation-wide: no tenant binding (platform admins) */
#define EVCS_ROUTE_TENANT_OPT 0x4u /* a platform admin may call it without naming a tenant */
#define EVCS_ROUTE_RAW_BODY 0x8u   /* the body is not JSON: req_body gives it as sent */

typedef struct evcs_api_route {
	uint32_t size;       /* sizeof(evcs_api_route_t) */
	const char *method;  /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *pattern; /* "/api/v1/example/notes/{note_id}"; {name} = one path segment */
	int min_role;        /* enum evcs_role */
	unsigned flags;      /* EVCS_ROUTE_* */
	evcs_api_handler handler;
	void *ud;
	/* The OpenAPI 3 Operation Object of this method and path, as JSON text
	 * (summary, tags, parameters, requestBody, responses). Required: the served
	 * document must describe every route. Copied by the core. */
	const char *openapi;
	void *reserved[4];
} evcs_api_route_t;

/* ---- services between plugins (ABI 2) -----------------------------------
 * A plugin offers a named, versioned table of functions; others look it up.
 * A service table starts with `uint32_t size` (sizeof as the provider built it),
 * like evcs_api_t, so a consumer checks that a function is inside the table
 * before calling it (EVCS_SERVICE_HAS). Calls are plain function calls on the
 * loop thread; each function takes the provider's ctx first. Names in use:
 * "payment" (create, refund, query), "messaging" (send), "blob" (put, get,
 * presign); their tables are defined in the providers' headers. */
#define EVCS_SERVICE_HAS(type, tbl, fn)                                                     \
	((tbl) != NULL && (size_t)(tbl)->size >= offsetof(type, fn) + sizeof((tbl)->fn) &&   \
	 (tbl)->fn != NULL)

/* ---- charging sessions: the protocol-neutral model (ABI 2) ---------------
 * A protocol plugin reports what its piles do through these typed structs; the
 * core owns the session row. At open the core takes the tariff snapshot itself;
 * at close it prices the session through the tenant's tariff script (or plain
 * rates), stores everything in one transaction together with the plugin's own
 * evidence row, answers the plugin (which may then acknowledge the pile), and
 * publishes EVCS_EV_TRANSACTION_CLOSED and EVCS_EV_SESSION_STOPPED itself.
 * Identities are text of any length up to EVCS_ID_MAX: pile identities and
 * trade numbers are whatever the protocol uses (14 and 32 hex digits for one
 * Chinese protocol, a charge box id and a transaction id for OCPP).
 * Structs start with their size; the core reads only fields inside it. */
#define EVCS_ID_MAX 64

/* Authorisation results, protocol-neutral; each protocol maps them to its codes. */
enum evcs_auth_result {
	EVCS_AUTH_ACCEPTED = 0,
	EVCS_AUTH_UNKNOWN = 1,         /* no such card / account, or mode not supported */
	EVCS_AUTH_BLOCKED = 2,         /* card, vehicle, driver or wallet blocked or frozen */
	EVCS_AUTH_NO_FUNDS = 3,        /* balance plus credit below the minimum */
	EVCS_AUTH_PILE_DISABLED = 4,   /* the pile may not be used */
	EVCS_AUTH_BAD_PIN = 5,         /* set by the protocol plugin after its own PIN check */
	EVCS_AUTH_UNKNOWN_VEHICLE = 6, /* VIN start with no registered vehicle */
	EVCS_AUTH_UNAVAILABLE = 7,     /* could not decide (database unreachable) */
};

enum evcs_id_kind { EVCS_IDK_CARD = 1, EVCS_IDK_ACCOUNT = 2, EVCS_IDK_VIN = 3 };

typedef struct evcs_auth_request {
	uint32_t size;
	int64_t tenant_id, pile_id; /* from the pile's login */
	int gun;
	int id_kind;                /* enum evcs_id_kind */
	const char *id_token;       /* physical card number, account, VIN */
	int64_t min_balance;        /* 0.00001 yuan; 0 = the default (1) */
	void *reserved[4];
} evcs_auth_request_t;

typedef struct evcs_auth_result_info {
	uint32_t size;
	int result;              /* enum evcs_auth_result */
	const char *reason;      /* short text for logs */
	int64_t driver_id, card_id;  /* 0 when none */
	int64_t balance;         /* wallet balance, 0.00001 yuan */
	const char *logical_card; /* the card's printed number, or NULL */
	const char *pin_hash;    /* the card's stored PIN hash (lower-case hex MD5 of the PIN), NULL
				  * when it has none: the protocol plugin checks PINs in its own forms */
	void *reserved[4];
} evcs_auth_result_info_t;
typedef void (*evcs_auth_done)(int status, const evcs_auth_result_info_t *r, void *ud);

typedef struct evcs_session_open {
	uint32_t size;
	int64_t tenant_id, pile_id;
	const char *pile;        /* the pile's identity (for events and logs) */
	int gun;                 /* 1.. */
	const char *trade_no;    /* the session's identity on the pile's side, unique per pile */
	const char *start_mode;  /* "app", "card", "offline_card", "vin", "operator", "partner" */
	int64_t driver_id, card_id, operator_user_id, partner_id; /* 0 = none */
	const char *id_token;    /* card number or VIN presented, or NULL */
	const char *partner_seq; /* a partner platform's own order id, or NULL */
	int64_t requested_ms;    /* 0 = now */
	void *reserved[4];
} evcs_session_open_t;

/* Energy per time-of-use period, in the core's four periods. */
enum evcs_period { EVCS_SHARP = 0, EVCS_PEAK = 1, EVCS_FLAT = 2, EVCS_VALLEY = 3 };

typedef struct evcs_session_close {
	uint32_t size;
	int64_t tenant_id, pile_id;
	const char *pile;
	int gun;
	const char *trade_no;
	int64_t start_ms, end_ms;           /* the pile's clock (the core also records its own) */
	int64_t meter_start, meter_stop;    /* 0.0001 kWh, -1 unknown */
	int64_t total_kwh, total_loss_kwh;  /* 0.0001 kWh */
	/* Per-period energy when the pile splits it (has_periods = 1); otherwise the core
	 * prices the session from its stored meter readings and total_kwh. */
	int has_periods;
	struct {
		int64_t kwh, loss_kwh; /* 0.0001 kWh */
		int64_t price;         /* the pile's unit price, 0.00001 yuan/kWh (-1 unknown) */
		int64_t amount;        /* the pile's amount, 0.00001 yuan (-1 unknown) */
	} period[4];
	int64_t pile_amount;         /* the pile's own total bill, 0.00001 yuan (-1 unknown) */
	const char *start_mode;      /* for an offline session the core never saw open */
	const char *id_token;        /* card / VIN of that session, or NULL */
	int stop_reason;             /* the protocol's code (stored as is) */
	const char *stop_reason_text;
	/* Identity of the record for resends: equal digests are a duplicate, a different
	 * digest for the same trade number is a conflict (kept, alarmed). */
	const char *digest;
	/* The protocol's raw evidence, stored by the core in the SAME transaction: one
	 * tenant-scoped statement into the plugin's own table (NULL = none). A parameter of type
	 * EVCS_DB_T_REFID (any index, e.g. EVCS_DB_REFID(0)) binds the session's id. Written as
	 * `INSERT INTO t (tenant_id, ...) VALUES (?, ...)` (placeholders only, nothing after) the
	 * core may write it together with other closes' evidence as one multi-row INSERT. */
	const char *evidence_sql;
	const evcs_db_param_t *evidence_params;
	size_t evidence_nparams;
	void *reserved[4];
} evcs_session_close_t;

typedef struct evcs_session_result {
	uint32_t size;
	int64_t session_id;
	int created;    /* open: a new row (0 = it existed: idempotent repeat) */
	int duplicate;  /* close: already closed with the same digest (nothing written) */
	int conflict;   /* close: already closed with another digest (kept the first, alarmed) */
	int mismatch;   /* close: the platform's bill differs from the pile's beyond tolerance */
	int64_t total_kwh, total_amount, pile_amount;
	int64_t alarm_id; /* 0 = none */
	void *reserved[4];
} evcs_session_result_t;
/* status EVCS_OK with r; EVCS_EINVAL malformed (answer the pile so), EVCS_EUNAVAIL database
 * down (do not acknowledge: the pile resends), EVCS_EBUSY, EVCS_ERR. */
typedef void (*evcs_session_done)(int status, const evcs_session_result_t *r, void *ud);

typedef struct evcs_meter_reading {
	uint32_t size;
	int64_t tenant_id, pile_id;
	const char *pile;
	int gun;
	const char *trade_no;   /* the open session on this gun */
	int64_t ts_ms;          /* 0 = now */
	int64_t kwh;            /* energy so far this session, 0.0001 kWh */
	int64_t amount;         /* the pile's running amount, 0.00001 yuan (-1 unknown) */
	int64_t voltage_dv, current_da; /* 0.1 V, 0.1 A (-1 unknown) */
	int soc;                /* % (-1 unknown) */
	int gun_temp_c, batt_max_temp_c; /* (-1000 unknown) */
	int remaining_min;      /* (-1 unknown) */
	void *reserved[4];
} evcs_meter_reading_t;

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

	/* HTTP: method NULL = any; prefix matched on path segments ("/evcs/v1/"); not
	 * authenticated by the core. A prefix under /api/v1/ is refused (EVCS_EINVAL): use
	 * api_route there. */
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
	/* -- end of ABI 1.0; ABI 2.0 appended below -- */

	/* data layer (see "data layer" above) */
	int (*db_query)(evcs_plugin_t *p, int64_t tenant_id, const char *sql,
			const evcs_db_param_t *params, size_t nparams, unsigned flags, evcs_db_cb cb,
			void *ud);
	int (*db_query_platform)(evcs_plugin_t *p, const char *sql, const evcs_db_param_t *params,
				 size_t nparams, unsigned flags, evcs_db_cb cb, void *ud);
	/* Transactions: statements run in order in one transaction; the first failure rolls back
	 * all and is the job's status. EVCS_DB_REFID(k) binds statement k's insert id. An add
	 * that fails poisons the txn (submit then fails with that status). NULL: no database
	 * (adds and submits on a NULL txn return EVCS_EUNAVAIL). */
	evcs_db_txn_t *(*db_txn_new)(evcs_plugin_t *p);
	int (*db_txn_add)(evcs_db_txn_t *t, int64_t tenant_id, const char *sql,
			  const evcs_db_param_t *params, size_t nparams, unsigned stmt_flags);
	int (*db_txn_add_platform)(evcs_db_txn_t *t, const char *sql, const evcs_db_param_t *params,
				   size_t nparams, unsigned stmt_flags);
	/* consumes t in every case */
	int (*db_txn_submit)(evcs_db_txn_t *t, unsigned flags, evcs_db_cb cb, void *ud);
	void (*db_txn_free)(evcs_db_txn_t *t); /* abandon without submitting */
	/* borrowed cell text (NULL = SQL NULL or out of range) */
	const char *(*db_cell)(const evcs_db_result_t *r, size_t row, unsigned col);
	/* 0 and *out; EVCS_ENOENT for NULL/out of range; EVCS_EINVAL when not an integer */
	int (*db_cell_int)(const evcs_db_result_t *r, size_t row, unsigned col, int64_t *out);
	int (*db_col)(const evcs_db_result_t *r, const char *name); /* index or -1 */

	/* operator-API routes (see "operator-API routes" above). EVCS_EEXIST when the method
	 * and pattern clash with a core or another plugin's route (parameter names do not
	 * count); EVCS_EINVAL for a pattern outside /api/v1/ (or whose first segment there is a
	 * parameter), a path already served under other parameter names, a bad method, role or
	 * flag, or OpenAPI text that is not a JSON object; EVCS_EUNAVAIL when the operator API
	 * is not running (no database). Each refusal is logged. */
	int (*api_route)(evcs_plugin_t *p, const evcs_api_route_t *route);
	int64_t (*req_tenant)(evcs_api_req_t *r);   /* bound tenant; 0 on a platform request */
	int (*req_role)(evcs_api_req_t *r);         /* enum evcs_role of the caller */
	const char *(*req_actor)(evcs_api_req_t *r); /* "user:NAME", "bootstrap" (for audit rows) */
	const char *(*req_param)(evcs_api_req_t *r, const char *name); /* path parameter or NULL */
	const char *(*req_query)(evcs_api_req_t *r, const char *key);  /* decoded; NULL if absent */
	/* JSON object text ("{}" when empty), or the raw body for EVCS_ROUTE_RAW_BODY */
	const char *(*req_body)(evcs_api_req_t *r, size_t *len);
	/* ?limit (1..500, default 50) and ?offset (>= 0): 0, or -1 after answering 400 */
	int (*req_page)(evcs_api_req_t *r, int64_t *limit, int64_t *offset);
	/* answer with JSON text (NULL = no body, e.g. 204; invalid JSON is answered 500 and
	 * logged); frees the request */
	void (*req_reply)(evcs_api_req_t *r, int status, const char *json);
	/* 200 {"items": items_json (an array of at most limit), "limit", "offset", "next_offset"
	 * (null when !more)}: fetch limit + 1 rows and pass more = (rows > limit) */
	void (*req_reply_page)(evcs_api_req_t *r, const char *items_json, int64_t limit,
			       int64_t offset, int more);
	/* {"error":{"code","message","field"}} with the status; field may be NULL */
	void (*req_error)(evcs_api_req_t *r, int status, const char *code, const char *field,
			  const char *message);
	/* map a data-layer failure as the core's routes do (EEXIST 409, ENOENT 404,
	 * EUNAVAIL/EBUSY 503, constraint errors 400/409, otherwise 500 and a log line) */
	void (*req_db_error)(evcs_api_req_t *r, int status, const char *errmsg);
	/* append an audit_log row (actor, action, object, details JSON or NULL) to t, scoped to
	 * the request's tenant; object_id may be EVCS_DB_REFID(k) */
	int (*req_audit)(evcs_api_req_t *r, evcs_db_txn_t *t, const char *action,
			 const char *object_type, evcs_db_param_t object_id, const char *details_json);

	/* services: offer a table under a name and version (EVCS_EEXIST when that name is
	 * already offered). Looking one up fills *table and *ctx with the newest offered
	 * version >= min_version, or answers EVCS_ENOENT ("not available": no provider loaded,
	 * or only an older version). A provider's table stays valid until its cleanup; plugins
	 * unload in reverse load order, so a consumer loaded after its provider may keep it. */
	int (*service_offer)(evcs_plugin_t *p, const char *name, uint32_t version,
			     const void *table, void *ctx);
	int (*service_get)(evcs_plugin_t *p, const char *name, uint32_t min_version,
			   const void **table, void **ctx, uint32_t *version);

	/* charging sessions (see "charging sessions" above); done runs later on the loop */
	int (*session_authorize)(evcs_plugin_t *p, const evcs_auth_request_t *a,
				 evcs_auth_done done, void *ud);
	int (*session_open)(evcs_plugin_t *p, const evcs_session_open_t *o, evcs_session_done done,
			    void *ud);
	int (*session_close)(evcs_plugin_t *p, const evcs_session_close_t *c,
			     evcs_session_done done, void *ud);
	/* batched (written within 1 s); EVCS_OK once queued */
	int (*session_meter)(evcs_plugin_t *p, const evcs_meter_reading_t *m);

	/* local time: the tenant's configured IANA zone (tenants.timezone, else [core] timezone),
	 * DST-correct. UTC offset in seconds at instant t_ms. */
	int (*tenant_utc_offset)(evcs_plugin_t *p, int64_t tenant_id, int64_t t_ms, int *offset_s);
	/* -- end of ABI 2.0; append only -- */
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
	/* -- ABI 2: two of the eight reserved slots of ABI 1 (NULL/0 in ABI 1 plugins) -- */
	const evcs_migration_t *migrations; /* this plugin's schema, ended by {0}; NULL = none */
	uintptr_t flags;                     /* EVCS_PLUGIN_F_* */
	void *reserved[6];
} evcs_plugin_info_t;

/* The entry point the core looks up. It receives the core's ABI version and
 * returns the descriptor (or NULL to refuse). The core itself refuses a
 * descriptor whose abi_major is outside EVCS_ABI_MAJOR_OLDEST..EVCS_ABI_MAJOR,
 * and logs both numbers. */
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
