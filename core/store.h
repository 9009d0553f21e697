/*
 * store.h: named storage operations, the only way plugins reach the database.
 *
 * A caller names an operation ("pile.login", "txn.record", ...) and passes a
 * JSON object; the result (a JSON object) comes back through the callback on
 * the loop thread, always asynchronously. Operations are registered by the
 * core's storage module (store.c) against the data layer; the list with every
 * field is in plugins/README.md. Unknown operations fail with EVCS_ENOTSUP, a
 * missing database with EVCS_EUNAVAIL, bad arguments with EVCS_EINVAL and a
 * {"error":..., "field":...} result.
 * When a plugin is unloaded its pending callbacks are dropped, never called.
 */
#ifndef EVCS_STORE_H
#define EVCS_STORE_H

#include <evcs/plugin.h>
#include <jansson.h>

struct evcs_core;
typedef struct evcs_store evcs_store_t;
typedef struct evcs_store_call evcs_store_call_t;

/* An operation handler gets the parsed args (borrowed) and must finish the call
 * exactly once with evcs_store_finish (now or later). */
typedef void (*evcs_store_op_fn)(evcs_store_t *s, evcs_store_call_t *call, json_t *args);

evcs_store_t *evcs_store_new(struct evcs_core *core);
void evcs_store_free(evcs_store_t *s);
int evcs_store_register(evcs_store_t *s, const char *op, evcs_store_op_fn fn);
int evcs_store_call(evcs_store_t *s, const char *caller, const char *op, const char *args_json,
		    evcs_store_done done, void *ud);
/* Finish a call: result is stolen (may be NULL). */
void evcs_store_finish(evcs_store_call_t *call, int status, json_t *result);
/* Convenience: finish with {"error": code, "message": msg, "field": field}. */
void evcs_store_fail(evcs_store_call_t *call, int status, const char *field, const char *msg);
const char *evcs_store_caller(evcs_store_call_t *call);
struct evcs_core *evcs_store_core(evcs_store_t *s);
void evcs_store_drop_owner(evcs_store_t *s, const char *owner);
/* Register the built-in operations (store_ops.c); needs core->db. */
void evcs_store_register_builtin(evcs_store_t *s);
/* Flush and free the built-in operations' write batches (before evcs_db_close). */
void evcs_store_builtin_free(evcs_store_t *s);

#endif
