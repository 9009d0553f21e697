/*
 * store_ops.h: what the built-in storage operations (api->store, ABI 1; plugins/STORAGE.md) share:
 * their per-core state, the JSON argument helpers, the operation-in-flight object and the
 * registration hooks of each domain file. Internal to store_ops.c (registration, batches),
 * store_piles.c (piles and presence), store_sessions.c (sessions, meter samples, records and
 * billing) and store_alarms.c (alarms). Loop thread only.
 *
 * Every operation takes a JSON object and finishes with a JSON object. Operations never block:
 * they submit data-layer jobs (db.h) and finish from the job's callback, so a result always
 * means the write is committed. Batched operations (pile.seen, meter.sample, event.store) finish
 * once the row is queued in the batch.
 *
 * Tenancy: the plugin passes the tenant_id it received from pile.login; every statement is
 * tenant-scoped through the data layer's `tenant_id = ?` markers, except the two that are
 * installation-wide by nature (the identity lookup at login and the unclaimed-pile table).
 *
 * Errors: a missing/ill-typed argument fails the call with EVCS_EINVAL and {"error","field"}; the
 * data layer's EVCS_EUNAVAIL (database down) is passed through unchanged so protocol plugins can
 * withhold acknowledgements; any other data-layer failure becomes EVCS_ERR (logged here once).
 */
#ifndef EVCS_STORE_OPS_H
#define EVCS_STORE_OPS_H

#include "billing.h"
#include "core.h"
#include "db.h"
#include "log.h"
#include "store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMP "store"

struct ops_state {
	evcs_store_t *store;
	evcs_core_t *core;
	evcs_db_batch_t *seen;    /* pile_presence.last_seen_ms */
	evcs_db_batch_t *samples; /* meter_samples */
	evcs_db_batch_t *events;  /* audit_log rows for pile events */
};
/* hung off the core context (core->store_ops): no process-wide state */
#define OPS(core) ((struct ops_state *)(core)->store_ops)

/* A pile identity or trade number: 1..EVCS_ID_MAX bytes, no control characters (the
 * protocol decides the shape; the core only bounds it). */
static inline int valid_identity(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n < 1 || n > EVCS_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}


static inline int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int get_int(json_t *a, const char *k, int64_t *out)
{
	json_t *v = json_object_get(a, k);
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return 0;
	}
	return -1;
}

static inline int64_t opt_int(json_t *a, const char *k, int64_t def)
{
	int64_t v;
	return get_int(a, k, &v) == 0 ? v : def;
}

static inline const char *opt_str(json_t *a, const char *k)
{
	json_t *v = json_object_get(a, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Param for an optional positive id: NULL when absent or <= 0. */
static inline evcs_db_param_t opt_id(json_t *a, const char *k)
{
	int64_t v = opt_int(a, k, 0);
	return v > 0 ? EVCS_DB_INT(v) : EVCS_DB_NULL;
}

static inline int64_t cell_i64(const evcs_db_result_t *r, size_t row, unsigned col, int64_t def)
{
	int64_t v;
	return evcs_db_cell_i64(r, row, col, &v) == 0 ? v : def;
}

static inline int map_db_status(int st) { return st == EVCS_EUNAVAIL || st == EVCS_EINVAL ? st : EVCS_ERR; }

static inline void fail_db(evcs_store_call_t *call, int st, const char *op, const char *errmsg)
{
	if (st != EVCS_EUNAVAIL)
		evcs_log(EVCS_LOG_ERR, COMP, 0, NULL, "%s (%s): %s", op, evcs_status_str(st),
			 errmsg ? errmsg : "");
	evcs_store_fail(call, map_db_status(st), NULL,
			st == EVCS_EUNAVAIL ? "database unavailable" : "database error");
}

static inline void fail_submit(evcs_store_call_t *call, int rc, const char *op)
{
	evcs_log(EVCS_LOG_ERR, COMP, 0, NULL, "%s: cannot submit (%s)", op, evcs_status_str(rc));
	evcs_store_fail(call, rc == EVCS_EBUSY ? EVCS_EBUSY : map_db_status(rc), NULL,
			"cannot queue the database job");
}

#define REQ_INT(args, key, var)                                                        \
	do {                                                                           \
		if (get_int((args), (key), &(var)) < 0) {                              \
			evcs_store_fail(call, EVCS_EINVAL, (key), "required integer"); \
			return;                                                        \
		}                                                                      \
	} while (0)
#define REQ_STR(args, key, var)                                                       \
	do {                                                                          \
		(var) = opt_str((args), (key));                                       \
		if (!(var)) {                                                         \
			evcs_store_fail(call, EVCS_EINVAL, (key), "required string"); \
			return;                                                       \
		}                                                                     \
	} while (0)

static inline int is_hex_upper(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

/* An operation in flight: the call, a reference to its arguments, and per-op scratch. */
struct op {
	evcs_store_call_t *call;
	evcs_core_t *core;
	json_t *args;
	int64_t tenant;
	int64_t pile_id;
	int attempt;
	char name[24];
};

static inline struct op *op_new(evcs_store_t *s, evcs_store_call_t *call, json_t *args, const char *name)
{
	struct op *o = calloc(1, sizeof *o);
	if (!o) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	o->call = call;
	o->core = evcs_store_core(s);
	o->args = json_incref(args);
	snprintf(o->name, sizeof o->name, "%s", name);
	return o;
}

static inline void op_free(struct op *o)
{
	if (!o)
		return;
	json_decref(o->args);
	free(o);
}

/* Finish with {"updated": affected rows of the first statement} (or the given key). */
struct simple_op {
	struct op o;
	const char *key;
};
void store_simple_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud);
struct simple_op *store_simple_new(evcs_store_t *s, evcs_store_call_t *call, json_t *args,
				   const char *name, const char *key);
void store_simple_submit_rc(struct simple_op *so, int rc);
#define simple_done store_simple_done
#define simple_new store_simple_new
#define simple_submit_rc store_simple_submit_rc

/* store_ops.c: the write batches, created on first use; 0 or -1 */
int store_ensure_batches(evcs_core_t *core);
/* store_alarms.c */
void store_publish_alarm(evcs_core_t *core, int raise, int64_t tenant, const char *pile, int gun,
			 const char *code, const char *severity, const char *message,
			 int64_t alarm_id);

/* each domain file registers its operations */
void store_register_piles(evcs_store_t *s);
void store_register_sessions(evcs_store_t *s);
void store_register_alarms(evcs_store_t *s);

#endif
