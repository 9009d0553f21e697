/*
 * store_ops.c: registration of the built-in storage operations (api->store, ABI 1), their write
 * batches and the single-statement helper the domain files share (store_ops.h). The operations
 * themselves live by domain: store_piles.c, store_sessions.c, store_alarms.c.
 *
 * State: the three batches live in one object hung off the core context. The daemon must call
 * evcs_store_builtin_free() before evcs_db_close(): batches have to be flushed first.
 */
#include "store_ops.h"

#undef simple_done
#undef simple_new
#undef simple_submit_rc

/* ---- simple single-statement operations --------------------------------------------------- */


void store_simple_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			void *ud)
{
	struct simple_op *so = ud;
	if (st != EVCS_OK)
		fail_db(so->o.call, st, so->o.name, errmsg);
	else
		evcs_store_finish(so->o.call, EVCS_OK,
				  json_pack("{s:I}", so->key, (json_int_t)(nres ? res[0].affected : 0)));
	op_free(&so->o);
}

struct simple_op *store_simple_new(evcs_store_t *s, evcs_store_call_t *call, json_t *args,
				    const char *name, const char *key)
{
	struct simple_op *so = calloc(1, sizeof *so);
	if (!so) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	so->o.call = call;
	so->o.core = evcs_store_core(s);
	so->o.args = json_incref(args);
	snprintf(so->o.name, sizeof so->o.name, "%s", name);
	so->key = key;
	return so;
}

void store_simple_submit_rc(struct simple_op *so, int rc)
{
	if (rc != EVCS_OK) {
		fail_submit(so->o.call, rc, so->o.name);
		op_free(&so->o);
	}
}

/* ---- batched operations ------------------------------------------------------------------ */

static void batch_done(int st, size_t rows, void *ud)
{
	if (st != EVCS_OK)
		evcs_log(EVCS_LOG_WARNING, COMP, 0, NULL, "batch %s: %zu rows not written (%s)",
			 (const char *)ud, rows, evcs_status_str(st));
}

int store_ensure_batches(evcs_core_t *core)
{
	struct ops_state *g = OPS(core);
	if (!g || !core->db)
		return -1;
	if (!g->seen)
		g->seen = evcs_db_batch_new(core->db, "pile_seen",
					    "INSERT INTO pile_presence (pile_id, tenant_id, last_seen_ms)", 3,
					    "ON DUPLICATE KEY UPDATE last_seen_ms = "
					    "GREATEST(last_seen_ms, VALUES(last_seen_ms))",
					    1000, 1000, batch_done, (void *)"pile_seen");
	if (!g->samples)
		g->samples = evcs_db_batch_new(
		    core->db, "meter_samples",
		    "INSERT INTO meter_samples (session_id, ts_ms, kwh, amount, voltage_dv, current_da, soc, "
		    "gun_temp_c, batt_max_temp_c, remaining_min)",
		    10, "ON DUPLICATE KEY UPDATE kwh = VALUES(kwh), amount = VALUES(amount)", 500, 1000,
		    batch_done, (void *)"meter_samples");
	if (!g->events)
		g->events = evcs_db_batch_new(
		    core->db, "pile_events",
		    "INSERT INTO audit_log (tenant_id, actor, action, object_type, object_id, details, ts_ms)",
		    7, NULL, 200, 1000, batch_done, (void *)"pile_events");
	return g->seen && g->samples && g->events ? 0 : -1;
}

/* ---- registration -------------------------------------------------------------------------- */

void evcs_store_register_builtin(evcs_store_t *s)
{
	evcs_core_t *core = evcs_store_core(s);
	if (!core->store_ops) {
		core->store_ops = calloc(1, sizeof(struct ops_state));
		if (!core->store_ops) {
			evcs_err(COMP, "out of memory registering storage operations");
			return;
		}
	}
	OPS(core)->store = s;
	OPS(core)->core = core;
	store_register_piles(s);
	store_register_sessions(s);
	store_register_alarms(s);
}

void evcs_store_builtin_free(evcs_store_t *s)
{
	evcs_core_t *core = s ? evcs_store_core(s) : NULL;
	struct ops_state *g = core ? OPS(core) : NULL;
	if (!g)
		return;
	/* flush what is pending; the data layer runs the final flushes inside evcs_db_close */
	evcs_db_batch_free(g->seen);
	evcs_db_batch_free(g->samples);
	evcs_db_batch_free(g->events);
	free(g);
	core->store_ops = NULL;
}
