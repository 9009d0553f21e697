/*
 * core/script.h: the tenant Lua 5.4 scripting engine (tariffs and alarms).
 *
 * Model. An engine holds, per tenant, a few named scripts ("slots": "tariff",
 * "alarms", or any [a-z0-9_]{1,32} name). Each slot is its own lua_State built
 * from a whitelist (no io/os/package/debug/string.dump/binary chunks; see
 * scripts/README.md "Sandbox"), with its own memory cap (custom allocator), a
 * per-call instruction budget and wall-clock deadline (count hook), and a cap
 * on any single allocation (max_string). A call that breaks a limit is
 * aborted with an error naming the tenant and slot; the state is then rebuilt
 * from the last good source so the script keeps serving.
 *
 * Loading. evcs_script_load() compiles the source (text only) in a fresh
 * state, runs the chunk, validates tariff() when defined, runs every function
 * in the script's `tests` table, and only then swaps it in. On any failure the
 * previous script stays live and *err explains why.
 *
 * Script storage (decided here, see scripts/README.md): defaults are the files
 * in $(pkgdatadir)/scripts (tariff.lua, alarms.lua); a tenant's own scripts are
 * files <state_dir>/scripts/<tenant_id>/<slot>.lua. evcs_script_load_tenant()
 * loads every known slot from the tenant directory, falling back per slot to
 * the default directory. SIGHUP = call it again for each tenant. An API upload
 * = evcs_script_load() with the new text, then write the file only on success.
 *
 * Local time. Every script call runs in one IANA zone (tz.h): the tenant's, from the
 * resolver the daemon sets (evcs_script_engine_set_tz), else limits.tz; a quote runs in the
 * session's zone. os.date/os.time/evcs.date and the half-hour slot of each piece of energy
 * use that zone's offset at the instant concerned, so DST switches are honoured.
 *
 * Units (all integers, never floats): money in 0.00001 yuan, energy in
 * 0.0001 kWh, rates in 0.00001 yuan/kWh, times in unix seconds for sessions
 * and unix milliseconds for events (as on the bus).
 *
 * Rounding (the only place money is rounded): each line item's amount is
 * computed by the script with evcs.mul_div(qty, unit_price, 10000), i.e.
 * exactly qty*price/10^4 rounded once to the nearest 0.00001 yuan, ties away
 * from zero ("half-up"). The total is the exact sum of the rounded items; the
 * engine asserts sum(items) == total and rejects float amounts.
 *
 * Threading: an engine is not thread-safe. Use it from one thread (the event
 * loop) or serialise calls. Calls never re-enter a running script: a call for
 * a slot that is already running returns EVCS_EBUSY. Alarm callbacks are
 * invoked after the Lua call has returned, so they may publish on the bus and
 * even call back into the engine.
 *
 * Errors: functions return 0 (EVCS_OK) or a negative EVCS_E* status from
 * evcs/plugin.h. When `err` is non-NULL, *err receives a malloc'd message
 * ("tenant 7 script tariff: ...") that the caller frees; *err is NULL on
 * success. Outputs are untouched on failure unless stated.
 */
#ifndef EVCS_SCRIPT_H
#define EVCS_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "evcs/plugin.h"
#include "tz.h"

/* ---- limits ------------------------------------------------------------ */
typedef struct evcs_script_limits {
	size_t mem_bytes;      /* heap cap of each script state (default 8 MiB) */
	uint64_t instructions; /* Lua VM instructions per call (default 2,000,000) */
	unsigned wall_ms;      /* wall-clock deadline per call (default 50 ms) */
	size_t max_string;     /* largest single allocation, e.g. a string (default 1 MiB) */
	size_t max_source;     /* largest script source (default 256 KiB) */
	unsigned max_alarms;   /* alarm raise/clear operations per call (default 64) */
	unsigned max_log;      /* log lines per call (default 16) */
	/* local time for os.date/os.time/evcs.date when the engine has no zone resolver
	 * (evcs_script_engine_set_tz); NULL = Asia/Shanghai (the default zone) */
	const evcs_tz_t *tz;
} evcs_script_limits_t;

/* Fills the defaults listed above (the daemon and evcsctl use the same ones). */
void evcs_script_limits_default(evcs_script_limits_t *l);

/* ---- tariff model (four periods, 48 half-hour slots: what charger protocols carry) ---- */
/* enum evcs_period (EVCS_SHARP..EVCS_VALLEY) is public: <evcs/plugin.h> */
#define EVCS_PERIODS 4
#define EVCS_SLOTS 48

typedef struct evcs_tariff_model {
	char model[5];          /* 4 decimal digits, NUL-terminated */
	int64_t elec[4];        /* electricity rate per period, 0.00001 yuan/kWh, fits u32 */
	int64_t service[4];     /* service rate per period, 0.00001 yuan/kWh, fits u32 */
	uint8_t slots[48];      /* half hour from 00:00 local time -> period 0..3 */
} evcs_tariff_model_t;

/* "sharp", "peak", "flat", "valley"; "?" for anything else. */
const char *evcs_period_name(int period);

/* ---- a finished session, as priced ---------------------------------------- */
typedef struct evcs_meter_sample {
	int64_t ts;  /* unix seconds */
	int64_t kwh; /* cumulative meter or session energy, 0.0001 kWh */
} evcs_meter_sample_t;

typedef struct evcs_session {
	int64_t tenant_id;
	const char *pile;     /* borrowed; may be NULL */
	int gun;
	const char *trade_no; /* borrowed; may be NULL */
	int64_t start, stop;  /* unix seconds */
	/* Local time of the session: the tenant's zone (evcs_core_tenant_tz). NULL = the
	 * fixed offset tz_offset_min (kept for callers that still set only that). */
	const evcs_tz_t *tz;
	int tz_offset_min;    /* used only when tz is NULL: local time = UTC + this */
	/* Energy: either samples (>= 2, ts ascending; the engine splits every
	 * interval linearly over the half-hour slots it crosses and sums them per
	 * period) or, when nsamples == 0, the per-period energy as reported. */
	const evcs_meter_sample_t *samples;
	size_t nsamples;
	int64_t period_kwh[4];
	/* The tariff in force when the session started (snapshot the lead stores
	 * with the session). NULL: the slot's current tariff(pile) is used. */
	const evcs_tariff_model_t *tariff;
	const char *driver_id, *member, *fleet; /* borrowed; may be NULL */
	const char *const *tags;                /* borrowed; ntags strings */
	size_t ntags;
	int64_t idle_minutes;  /* occupancy after charging ended */
	int64_t peak_power_w;  /* 0 = unknown */
	int64_t pile_amount;   /* the charger's own total, 0.00001 yuan; -1 = unknown */
	void *priv;            /* owned by evcs_session_from_json; NULL otherwise */
} evcs_session_t;

/* Parses the session JSON documented in scripts/README.md ("Session JSON").
 * On success *out owns its strings; release with evcs_session_clear(). Its zone (out->tz) is
 * the JSON's "tz" (an IANA name, loaded with evcs_tz_get, or a fixed "+08:00") or
 * "tz_offset_min", else local (NULL = Asia/Shanghai); local times in the JSON are read in it. */
int evcs_session_from_json_in(const char *text, const evcs_tz_t *local, evcs_session_t *out,
			      char **err);
int evcs_session_from_json(const char *text, evcs_session_t *out, char **err);
void evcs_session_clear(evcs_session_t *s);

/* Energy split into pieces, each inside one local half-hour slot of one day
 * (consecutive samples in the same slot are merged). Local time is the session's zone at each
 * instant: a piece never spans a change of UTC offset, so on a DST night each half hour lands
 * in the slot its wall clock shows (the repeated hour in autumn counts twice, the skipped one
 * in spring not at all). Between two samples the
 * energy is spread linearly over time; the split is exact (integer, the
 * pieces of an interval sum to its delta). A negative delta (meter going
 * backwards) counts as 0. Pieces with 0 energy are kept only when the
 * session has no energy at all. *out is malloc'd (caller frees); period_kwh
 * receives the per-period sums under model m. EVCS_EINVAL: unsorted samples,
 * fewer than 2, or a span over 62 days. */
typedef struct evcs_energy_piece {
	int64_t t0, t1; /* unix seconds */
	int64_t kwh;    /* 0.0001 kWh */
	int slot;       /* 0..47, local time */
	int period;     /* m->slots[slot] */
	int year, month, day, wday; /* local date; wday 1 = Monday .. 7 = Sunday */
} evcs_energy_piece_t;
int evcs_session_pieces(const evcs_session_t *s, const evcs_tariff_model_t *m,
			evcs_energy_piece_t **out, size_t *n, int64_t period_kwh[4], char **err);

/* ---- the bill -------------------------------------------------------------- */
enum evcs_bill_kind {
	EVCS_ITEM_ENERGY = 1,   /* electricity per period, amount >= 0 */
	EVCS_ITEM_SERVICE = 2,  /* service fee per period, amount >= 0 */
	EVCS_ITEM_FEE = 3,      /* extra fee (idle/occupancy...), amount >= 0 */
	EVCS_ITEM_DISCOUNT = 4, /* member/fleet discount, amount <= 0 */
	EVCS_ITEM_ADJUST = 5,   /* cap, rounding, anything else, any sign */
};
#define EVCS_BILL_MAX_ITEMS 64

typedef struct evcs_bill_item {
	int kind;           /* enum evcs_bill_kind */
	int period;         /* 0..3, or -1 when not per period */
	char label[64];
	char unit[16];      /* "kWh", "min", "session", "" ... (what qty counts) */
	int64_t qty;        /* 0.0001 kWh for energy/service; script-defined otherwise */
	int64_t unit_price; /* 0.00001 yuan per unit of qty (kWh for energy/service) */
	int64_t amount;     /* 0.00001 yuan, rounded as stated at the top */
} evcs_bill_item_t;

typedef struct evcs_bill {
	size_t nitems;
	evcs_bill_item_t items[EVCS_BILL_MAX_ITEMS];
	int64_t total;            /* == sum(items[].amount), >= 0 */
	int64_t energy_kwh;       /* energy priced (sum over periods), 0.0001 kWh */
	int64_t period_kwh[4];    /* energy per period actually priced */
	evcs_tariff_model_t tariff; /* the model used */
	char script_sha256[65];   /* hex digest of the pricing script's source */
} evcs_bill_t;

const char *evcs_bill_kind_name(int kind); /* "energy", "service", ... */

/* Bill as JSON (caller frees with free()): {"total":N,"total_yuan":"1.23456",
 * "energy_kwh":"30.0000", "period_kwh":{...}, "items":[{kind, period (name or
 * null), label, unit, qty, unit_price, amount, amount_yuan}], "tariff_model":
 * "0001", "tariff_slots":"48 digits 0-3", "script_sha256":"..."}; integers are
 * raw units, *_yuan / *_kwh strings are exact decimals. NULL on ENOMEM. */
char *evcs_bill_to_json(const evcs_bill_t *b);
/* The same without indentation. */
char *evcs_bill_to_json_compact(const evcs_bill_t *b);
/* The same document as a jansson tree (caller json_decref()s), for embedding it in another
 * document (the stored bill) without a second serialisation. NULL on ENOMEM. */
struct json_t;
struct json_t *evcs_bill_to_tree(const evcs_bill_t *b);

/* Tariff as JSON in the storage field names (model, sharp_elec_rate ...
 * valley_service_rate as "1.50000" strings, loss_ratio 0, slots[48]). */
char *evcs_tariff_to_json(const evcs_tariff_model_t *m);
int evcs_tariff_from_json(const char *text, evcs_tariff_model_t *out, char **err);

/* |platform - pile| > tolerance? (both 0.00001 yuan; pile < 0 = unknown -> 0) */
int evcs_bill_mismatch(int64_t platform_total, int64_t pile_amount, int64_t tolerance);

/* Exact decimal parsing: "1.2" with scale 5 -> 120000. More fractional digits
 * than `scale`, junk, or overflow -> EVCS_EINVAL. Used by evcs.yuan/evcs.kwh. */
int evcs_decimal_parse(const char *s, int scale, int64_t *out);
/* Formats v / 10^scale with exactly `scale` decimals into buf (>= 24 bytes). */
char *evcs_decimal_format(int64_t v, int scale, char *buf, size_t len);
/* round-half-away-from-zero of a*b/c with a 128-bit intermediate; c > 0.
 * EVCS_EINVAL when c <= 0 or the result does not fit int64. */
int evcs_mul_div(int64_t a, int64_t b, int64_t c, int64_t *out);

/* ---- the engine ------------------------------------------------------------ */
typedef struct evcs_script_engine evcs_script_engine_t;

/* limits NULL = defaults. NULL on allocation failure. */
evcs_script_engine_t *evcs_script_engine_new(const evcs_script_limits_t *limits);
void evcs_script_engine_free(evcs_script_engine_t *e);

/* Compile+test+swap (see top). `slot` names the script ("tariff", "alarms").
 * `chunkname` appears in Lua error messages (e.g. the file path); may be NULL.
 * EVCS_EINVAL: compile/run/self-test failure; the old script keeps serving. */
int evcs_script_load(evcs_script_engine_t *e, int64_t tenant, const char *slot,
		     const char *source, size_t len, const char *chunkname, char **err);
int evcs_script_load_file(evcs_script_engine_t *e, int64_t tenant, const char *slot,
			  const char *path, char **err);
/* For each slot in EVCS_SCRIPT_SLOTS ("tariff", "alarms"): load
 * tenant_dir/<slot>.lua when it exists, else default_dir/<slot>.lua when that
 * exists. tenant_dir may be NULL. Every slot is attempted; the first error is
 * returned (and later ones appended to *err). */
#define EVCS_SCRIPT_SLOTS {"tariff", "alarms"}
int evcs_script_load_tenant(evcs_script_engine_t *e, int64_t tenant, const char *tenant_dir,
			    const char *default_dir, char **err);
/* Drops a tenant's slot (slot NULL = all its slots). EVCS_ENOENT when absent. */
int evcs_script_unload(evcs_script_engine_t *e, int64_t tenant, const char *slot);
/* sha256 hex of the live source of a slot, or NULL (borrowed until next load). */
const char *evcs_script_digest(evcs_script_engine_t *e, int64_t tenant, const char *slot);

/* The model a pile is sent: calls tariff(pile) in the tenant's "tariff" slot.
 * pile may be NULL. EVCS_ENOENT when the tenant has no tariff script. */
int evcs_script_tariff(evcs_script_engine_t *e, int64_t tenant, const char *pile,
		       evcs_tariff_model_t *out, char **err);

/* Prices a session with quote(session) in the tenant's "tariff" slot. On
 * success *bill holds the validated, itemised bill. */
int evcs_script_quote(evcs_script_engine_t *e, int64_t tenant, const evcs_session_t *s,
		      evcs_bill_t *bill, char **err);

/* ---- alarms ----------------------------------------------------------------- */
enum evcs_alarm_severity {
	EVCS_ALARM_INFO = 1,
	EVCS_ALARM_WARNING = 2,
	EVCS_ALARM_MAJOR = 3,
	EVCS_ALARM_CRITICAL = 4,
};
const char *evcs_alarm_severity_name(int sev); /* "info", "warning", "major", "critical" */

typedef struct evcs_script_alarm {
	int64_t tenant_id;
	const char *slot;    /* script that raised it */
	const char *pile;    /* NULL when not pile-specific */
	int gun;             /* 0 when not gun-specific */
	const char *code;    /* [A-Z0-9_]{1,48}; (tenant, pile, gun, code) identifies an alarm */
	int severity;        /* enum evcs_alarm_severity; 0 on clear */
	const char *message; /* "" on clear */
	int64_t ts_ms;       /* time of the triggering event */
} evcs_script_alarm_t;

/* Supplied by the lead. Every pointer may be NULL. All strings are borrowed
 * for the duration of the callback. Called after the Lua call returned OK,
 * in the order the script issued them; nothing is delivered when the call
 * failed (a handler's alarms are all-or-nothing). */
typedef struct evcs_script_callbacks {
	void (*raise)(const evcs_script_alarm_t *a, void *ud);
	void (*clear)(const evcs_script_alarm_t *a, void *ud);
	void *ud;
} evcs_script_callbacks_t;

/* Where script output (evcs.log/print) and script failures go: one line per
 * call, level = EVCS_LOG_*, msg already names tenant and slot. Without a sink
 * they are dropped (errors are still returned through *err). The engine logs
 * every failed call once at EVCS_LOG_WARNING, so callers need not repeat it. */
typedef void (*evcs_script_log_fn)(int64_t tenant, const char *slot, int level, const char *msg,
				   void *ud);
void evcs_script_engine_set_log(evcs_script_engine_t *e, evcs_script_log_fn fn, void *ud);

/* The zone a tenant's scripts see (os.date, os.time, evcs.date); fn NULL = limits.tz for all.
 * Called on the engine's thread before each call; must return a zone that outlives the call. */
typedef const evcs_tz_t *(*evcs_script_tz_fn)(int64_t tenant, void *ud);
void evcs_script_engine_set_tz(evcs_script_engine_t *e, evcs_script_tz_fn fn, void *ud);

/* A pseudo event, not on the bus: the lead calls evcs_script_tick() every few
 * seconds so scripts can detect "nothing happened for N seconds". */
#define EVCS_SCRIPT_EV_TICK 63

/* Event name as scripts see it ("meter_sample", "pile_offline", "tick"...);
 * NULL for unknown types. */
const char *evcs_script_event_name(uint32_t type);

/* True when any of the tenant's scripts subscribed to `type` (a bus
 * evcs_event_type or EVCS_SCRIPT_EV_TICK): dispatch only those. */
int evcs_script_subscribed(evcs_script_engine_t *e, int64_t tenant, uint32_t type);

/* Runs every handler the tenant's scripts registered for ev->type (slot by
 * slot in name order; one handler failing does not stop the others). Returns
 * EVCS_OK, EVCS_ENOENT (no handler), or the first error (also logged through
 * the log sink and, when err != NULL, returned as text). */
int evcs_script_on_event(evcs_script_engine_t *e, int64_t tenant, const evcs_event_t *ev,
			 const evcs_script_callbacks_t *cb, char **err);
int evcs_script_tick(evcs_script_engine_t *e, int64_t tenant, int64_t now_ms,
		     const evcs_script_callbacks_t *cb, char **err);

/* Counters for /metrics (cumulative over the engine's life). */
typedef struct evcs_script_stats {
	uint64_t calls, errors, limit_kills, loads, load_failures;
} evcs_script_stats_t;
void evcs_script_stats(const evcs_script_engine_t *e, evcs_script_stats_t *out);

/* ---- CLI ------------------------------------------------------------------- */
/* `evcsctl script check|quote|slots ...`; argv[0] = "script". Returns the
 * process exit status (0 ok, 1 script/session error, 2 usage). */
int evcs_script_cli_main(int argc, char **argv);

#endif /* EVCS_SCRIPT_H */
