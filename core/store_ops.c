/*
 * store_ops.c: the built-in storage operations that plugins call through api->store().
 *
 * Every operation takes a JSON object and finishes with a JSON object (plugins/STORAGE.md lists
 * the fields). Operations run on the loop thread and never block: they submit data-layer jobs
 * (db.h) and finish from the job's callback, so a result always means the write is committed
 * (txn.record answers only after COMMIT: the YKC 0x40 acknowledgement depends on it). Batched
 * operations (pile.seen, meter.sample, event.store) finish once the row is queued in the batch.
 *
 * Tenancy: the plugin passes the tenant_id it received from pile.login; every statement is
 * tenant-scoped through the data layer's `tenant_id = ?` markers, except the two that are
 * installation-wide by nature (the serial lookup at login and the unclaimed-pile table).
 *
 * Errors: a missing/ill-typed argument fails the call with EVCS_EINVAL and {"error","field"}; the
 * data layer's EVCS_EUNAVAIL (database down) is passed through unchanged so protocol plugins can
 * withhold acknowledgements; any other data-layer failure becomes EVCS_ERR (logged here once).
 *
 * State: the three batches live in one module-level object (one core per process). The daemon
 * must call evcs_store_builtin_free() before evcs_db_close(): batches have to be flushed first.
 */
#include "store.h"

#include "core.h"
#include "db.h"
#include "log.h"
#include "script.h"
#include "scripting.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMP "store"

void evcs_store_builtin_free(evcs_store_t *s);

struct ops_state {
	evcs_store_t *store;
	evcs_core_t *core;
	evcs_db_batch_t *seen;    /* pile_presence.last_seen_ms */
	evcs_db_batch_t *samples; /* meter_samples */
	evcs_db_batch_t *events;  /* audit_log rows for pile events */
};
/* hung off the core context (core->store_ops): no process-wide state */
#define OPS(core) ((struct ops_state *)(core)->store_ops)

/* ---- small helpers -------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int get_int(json_t *a, const char *k, int64_t *out)
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

static int64_t opt_int(json_t *a, const char *k, int64_t def)
{
	int64_t v;
	return get_int(a, k, &v) == 0 ? v : def;
}

static const char *opt_str(json_t *a, const char *k)
{
	json_t *v = json_object_get(a, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Param for an optional positive id: NULL when absent or <= 0. */
static evcs_db_param_t opt_id(json_t *a, const char *k)
{
	int64_t v = opt_int(a, k, 0);
	return v > 0 ? EVCS_DB_INT(v) : EVCS_DB_NULL;
}

static int64_t cell_i64(const evcs_db_result_t *r, size_t row, unsigned col, int64_t def)
{
	int64_t v;
	return evcs_db_cell_i64(r, row, col, &v) == 0 ? v : def;
}

static int map_db_status(int st) { return st == EVCS_EUNAVAIL || st == EVCS_EINVAL ? st : EVCS_ERR; }

static void fail_db(evcs_store_call_t *call, int st, const char *op, const char *errmsg)
{
	if (st != EVCS_EUNAVAIL)
		evcs_log(EVCS_LOG_ERR, COMP, 0, NULL, "%s (%s): %s", op, evcs_status_str(st),
			 errmsg ? errmsg : "");
	evcs_store_fail(call, map_db_status(st), NULL,
			st == EVCS_EUNAVAIL ? "database unavailable" : "database error");
}

static void fail_submit(evcs_store_call_t *call, int rc, const char *op)
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

static int is_hex_upper(const char *s, size_t n)
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

static struct op *op_new(evcs_store_t *s, evcs_store_call_t *call, json_t *args, const char *name)
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

static void op_free(struct op *o)
{
	if (!o)
		return;
	json_decref(o->args);
	free(o);
}

/* ---- tariffs --------------------------------------------------------------------------- */

/* Columns of a tariffs row aliased t, in the order tariff_from_row() reads them. */
#define TARIFF_COLS                                                                              \
	"t.model, t.sharp_elec_rate, t.sharp_service_rate, t.peak_elec_rate, t.peak_service_rate, " \
	"t.flat_elec_rate, t.flat_service_rate, t.valley_elec_rate, t.valley_service_rate, "       \
	"t.slots, t.script_id, t.id"
#define TARIFF_NCOLS 12

struct tariff_pick {
	int found;
	int script;       /* priced by the tenant's Lua tariff script */
	int64_t id;       /* tariffs.id, 0 when the model came from the script */
	evcs_tariff_model_t m;
};

static int tariff_from_row(const evcs_db_result_t *r, size_t row, unsigned c0,
			   struct tariff_pick *t)
{
	const char *model = evcs_db_cell(r, row, c0);
	const char *slots = evcs_db_cell(r, row, c0 + 9);
	if (!model || !slots || strlen(model) != 4 || strlen(slots) != EVCS_SLOTS)
		return -1;
	memset(t, 0, sizeof *t);
	snprintf(t->m.model, sizeof t->m.model, "%s", model);
	for (int p = 0; p < EVCS_PERIODS; p++) {
		t->m.elec[p] = cell_i64(r, row, c0 + 1 + 2 * (unsigned)p, 0);
		t->m.service[p] = cell_i64(r, row, c0 + 2 + 2 * (unsigned)p, 0);
	}
	for (int i = 0; i < EVCS_SLOTS; i++)
		t->m.slots[i] = (uint8_t)(slots[i] - '0');
	t->script = evcs_db_cell(r, row, c0 + 10) != NULL;
	t->id = cell_i64(r, row, c0 + 11, 0);
	t->found = 1;
	return 0;
}

static const char *const period_names[4] = {"sharp", "peak", "flat", "valley"};

/* The tariff as storage JSON: YKC codec names, rates as integers in 0.00001 yuan/kWh. */
static json_t *tariff_json(const struct tariff_pick *t)
{
	json_t *o = json_object();
	json_object_set_new(o, "model", json_string(t->m.model));
	json_object_set_new(o, "tariff_id", t->id > 0 ? json_integer(t->id) : json_null());
	json_object_set_new(o, "source", json_string(t->id > 0 ? "tariff" : "script"));
	json_object_set_new(o, "script", json_boolean(t->script));
	char k[32];
	for (int p = 0; p < EVCS_PERIODS; p++) {
		snprintf(k, sizeof k, "%s_elec_rate", period_names[p]);
		json_object_set_new(o, k, json_integer(t->m.elec[p]));
		snprintf(k, sizeof k, "%s_service_rate", period_names[p]);
		json_object_set_new(o, k, json_integer(t->m.service[p]));
	}
	json_object_set_new(o, "loss_ratio", json_integer(0));
	json_t *sl = json_array();
	for (int i = 0; i < EVCS_SLOTS; i++)
		json_array_append_new(sl, json_integer(t->m.slots[i]));
	json_object_set_new(o, "slots", sl);
	return o;
}

static int tariff_parse(json_t *o, struct tariff_pick *t)
{
	if (!json_is_object(o))
		return -1;
	memset(t, 0, sizeof *t);
	const char *model = opt_str(o, "model");
	json_t *sl = json_object_get(o, "slots");
	if (!model || strlen(model) != 4 || !json_is_array(sl) || json_array_size(sl) != EVCS_SLOTS)
		return -1;
	snprintf(t->m.model, sizeof t->m.model, "%s", model);
	char k[32];
	for (int p = 0; p < EVCS_PERIODS; p++) {
		snprintf(k, sizeof k, "%s_elec_rate", period_names[p]);
		if (get_int(o, k, &t->m.elec[p]) < 0 || t->m.elec[p] < 0)
			return -1;
		snprintf(k, sizeof k, "%s_service_rate", period_names[p]);
		if (get_int(o, k, &t->m.service[p]) < 0 || t->m.service[p] < 0)
			return -1;
	}
	for (int i = 0; i < EVCS_SLOTS; i++) {
		json_t *v = json_array_get(sl, (size_t)i);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 3)
			return -1;
		t->m.slots[i] = (uint8_t)json_integer_value(v);
	}
	t->id = opt_int(o, "tariff_id", 0);
	t->script = json_is_true(json_object_get(o, "script"));
	t->found = 1;
	return 0;
}

/* The model a pile is sent: its assigned tariff row, else the tenant's tariff script,
 * else the tenant's newest active tariff row. */
static void tariff_resolve(evcs_core_t *core, int64_t tenant, const char *serial,
			   const struct tariff_pick *assigned, const struct tariff_pick *active,
			   struct tariff_pick *out)
{
	memset(out, 0, sizeof *out);
	if (assigned && assigned->found) {
		*out = *assigned;
		return;
	}
	if (core->scripts) {
		evcs_scripting_touch(core, tenant);
		char *err = NULL;
		evcs_tariff_model_t m;
		if (evcs_script_tariff(core->scripts, tenant, serial, &m, &err) == EVCS_OK) {
			out->found = 1;
			out->script = 1;
			out->m = m;
			free(err);
			return;
		}
		free(err);
	}
	if (active && active->found)
		*out = *active;
}

/* ---- pile.login ------------------------------------------------------------------------ */

struct login_op {
	struct op o;
	int64_t station_id;
	struct tariff_pick assigned;
	char serial[16];
};

static void login_unclaimed_done(int st, const evcs_db_result_t *res, size_t nres,
				 const char *errmsg, void *ud)
{
	struct login_op *l = ud;
	if (st != EVCS_OK)
		evcs_log(EVCS_LOG_ERR, COMP, 0, l->serial, "cannot record unclaimed pile: %s",
			 errmsg);
	evcs_store_finish(l->o.call, EVCS_OK,
			  json_pack("{s:b, s:s}", "accepted", 0, "reason", "unknown_pile"));
	op_free(&l->o);
}

static void login_txn_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			   void *ud)
{
	struct login_op *l = ud;
	if (st != EVCS_OK) {
		fail_db(l->o.call, st, "pile.login", errmsg);
		op_free(&l->o);
		return;
	}
	struct tariff_pick active = {0}, pick;
	const evcs_db_result_t *last = &res[nres - 1];
	if (last->nrows > 0)
		tariff_from_row(last, 0, 0, &active);
	tariff_resolve(l->o.core, l->o.tenant, l->serial, &l->assigned, &active, &pick);
	json_t *r = json_pack("{s:b, s:I, s:I}", "accepted", 1, "tenant_id", (json_int_t)l->o.tenant,
			      "pile_id", (json_int_t)l->o.pile_id);
	json_object_set_new(r, "station_id",
			    l->station_id > 0 ? json_integer(l->station_id) : json_null());
	json_object_set_new(r, "tariff", pick.found ? tariff_json(&pick) : json_null());
	evcs_store_finish(l->o.call, EVCS_OK, r);
	op_free(&l->o);
}

static void login_lookup_done(int st, const evcs_db_result_t *res, size_t nres,
			      const char *errmsg, void *ud)
{
	struct login_op *l = ud;
	json_t *a = l->o.args;
	if (st != EVCS_OK) {
		fail_db(l->o.call, st, "pile.login", errmsg);
		op_free(&l->o);
		return;
	}
	evcs_db_t *db = l->o.core->db;
	int64_t now = now_ms();
	const char *peer = opt_str(a, "peer");
	if (res[0].nrows == 0) {
		/* keep what the pile told us so an operator can register it with one call */
		json_t *info = json_object();
		static const char *const keep[] = {"protocol", "protocol_version", "gun_count",
						   "pile_type", "firmware", "sim", "network",
						   "carrier", NULL};
		for (int i = 0; keep[i]; i++) {
			json_t *v = json_object_get(a, keep[i]);
			if (v)
				json_object_set(info, keep[i], v);
		}
		char *js = json_dumps(info, JSON_COMPACT);
		json_decref(info);
		evcs_db_param_t p[] = {EVCS_DB_STR(l->serial), EVCS_DB_INT(now), EVCS_DB_INT(now),
				       EVCS_DB_STR(peer ? peer : ""), EVCS_DB_STR(js)};
		int rc = evcs_db_query_platform(
		    db,
		    "INSERT INTO unclaimed_piles (serial, first_seen_ms, last_seen_ms, peer, attempts, login) "
		    "VALUES (?, ?, ?, ?, 1, ?) ON DUPLICATE KEY UPDATE last_seen_ms = VALUES(last_seen_ms), "
		    "peer = VALUES(peer), attempts = attempts + 1, login = VALUES(login)",
		    p, 5, EVCS_DB_IDEMPOTENT, login_unclaimed_done, l);
		free(js);
		if (rc != EVCS_OK)
			login_unclaimed_done(rc, NULL, 0, "submit failed", l);
		return;
	}
	l->o.pile_id = cell_i64(&res[0], 0, 0, 0);
	l->o.tenant = cell_i64(&res[0], 0, 1, 0);
	l->station_id = cell_i64(&res[0], 0, 2, 0);
	const char *pstatus = evcs_db_cell(&res[0], 0, 3);
	const char *tstatus = evcs_db_cell(&res[0], 0, 4);
	int64_t expires = cell_i64(&res[0], 0, 5, 0);
	tariff_from_row(&res[0], 0, 6, &l->assigned);
	const char *reason = NULL;
	if (!pstatus || strcmp(pstatus, "enabled") != 0)
		reason = "pile_disabled";
	else if (!tstatus || strcmp(tstatus, "active") != 0 || (expires > 0 && expires < now))
		reason = "tenant_inactive";
	if (reason) {
		json_t *r = json_pack("{s:b, s:s, s:I, s:I}", "accepted", 0, "reason", reason,
				      "tenant_id", (json_int_t)l->o.tenant, "pile_id",
				      (json_int_t)l->o.pile_id);
		evcs_store_finish(l->o.call, EVCS_OK, r);
		op_free(&l->o);
		return;
	}
	int64_t guns = opt_int(a, "gun_count", 0);
	const char *fw = opt_str(a, "firmware");
	const char *sim = opt_str(a, "sim");
	evcs_db_txn_t *t = evcs_db_txn_new(db);
	if (!t) {
		fail_submit(l->o.call, EVCS_ENOMEM, "pile.login");
		op_free(&l->o);
		return;
	}
	int64_t pv = opt_int(a, "protocol_version", -1), net = opt_int(a, "network", -1),
		car = opt_int(a, "carrier", -1);
	evcs_db_param_t up[] = {
	    pv >= 0 && pv <= 255 ? EVCS_DB_INT(pv) : EVCS_DB_NULL,
	    EVCS_DB_STR(fw ? fw : ""),
	    net >= 0 && net <= 255 ? EVCS_DB_INT(net) : EVCS_DB_NULL,
	    sim ? EVCS_DB_STR(sim) : EVCS_DB_NULL,
	    car >= 0 && car <= 255 ? EVCS_DB_INT(car) : EVCS_DB_NULL,
	    EVCS_DB_INT(opt_int(a, "pile_type", 0)),
	    EVCS_DB_INT(guns), EVCS_DB_INT(guns),
	    EVCS_DB_INT(l->o.pile_id)};
	evcs_db_txn_add(t, l->o.tenant,
			"UPDATE piles SET protocol_version = ?, program_version = LEFT(?, 32), network = ?, "
			"sim = LEFT(?, 20), carrier = ?, current_type = IF(? = 1, 'ac', 'dc'), "
			"gun_count = IF(? BETWEEN 1 AND 99, ?, gun_count), "
			"updated_ms = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) "
			"WHERE tenant_id = ? AND id = ?",
			up, 9, 0);
	evcs_db_param_t pr[] = {EVCS_DB_INT(l->o.pile_id), EVCS_DB_INT(now), EVCS_DB_INT(now),
				EVCS_DB_STR(peer ? peer : "")};
	evcs_db_txn_add(t, l->o.tenant,
			"INSERT INTO pile_presence (tenant_id, pile_id, online, last_seen_ms, last_login_ms, peer) "
			"VALUES (?, ?, 1, ?, ?, ?) ON DUPLICATE KEY UPDATE online = 1, "
			"last_seen_ms = VALUES(last_seen_ms), last_login_ms = VALUES(last_login_ms), "
			"peer = VALUES(peer)",
			pr, 4, 0);
	for (int64_t g = 1; g <= guns && g <= 99; g++) {
		evcs_db_param_t cp[] = {EVCS_DB_INT(l->o.pile_id), EVCS_DB_INT(g)};
		evcs_db_txn_add(t, l->o.tenant,
				"INSERT IGNORE INTO connectors (tenant_id, pile_id, gun_no) VALUES (?, ?, ?)",
				cp, 2, 0);
	}
	evcs_db_param_t us[] = {EVCS_DB_STR(l->serial)};
	evcs_db_txn_add_platform(t, "DELETE FROM unclaimed_piles WHERE serial = ?", us, 1, 0);
	evcs_db_txn_add(t, l->o.tenant,
			"SELECT " TARIFF_COLS " FROM tariffs t WHERE t.tenant_id = ? AND t.state = 'active' "
			"ORDER BY t.id DESC LIMIT 1",
			NULL, 0, 0);
	int rc = evcs_db_txn_submit(t, 0, login_txn_done, l);
	if (rc != EVCS_OK) {
		fail_submit(l->o.call, rc, "pile.login");
		op_free(&l->o);
	}
}

static void op_pile_login(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	const char *serial;
	REQ_STR(args, "serial", serial);
	if (!is_hex_upper(serial, 14)) {
		evcs_store_fail(call, EVCS_EINVAL, "serial", "14 digits expected");
		return;
	}
	struct login_op *l = calloc(1, sizeof *l);
	if (!l) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "out of memory");
		return;
	}
	l->o.call = call;
	l->o.core = evcs_store_core(s);
	l->o.args = json_incref(args);
	snprintf(l->serial, sizeof l->serial, "%s", serial);
	evcs_db_param_t p[] = {EVCS_DB_STR(serial)};
	int rc = evcs_db_query_platform(
	    l->o.core->db,
	    "SELECT p.id, p.tenant_id, p.station_id, p.status, tn.status, IFNULL(tn.expires_ms, 0), " TARIFF_COLS
	    " FROM piles p JOIN tenants tn ON tn.id = p.tenant_id "
	    "LEFT JOIN tariffs t ON t.tenant_id = p.tenant_id AND t.id = p.tariff_id WHERE p.serial = ?",
	    p, 1, 0, login_lookup_done, l);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "pile.login");
		op_free(&l->o);
	}
}

/* ---- tariff.for_pile ------------------------------------------------------------------- */

static void tariff_for_pile_done(int st, const evcs_db_result_t *res, size_t nres,
				 const char *errmsg, void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "tariff.for_pile", errmsg);
		op_free(o);
		return;
	}
	if (res[0].nrows == 0) {
		evcs_store_fail(o->call, EVCS_ENOENT, "pile_id", "no such pile in this tenant");
		op_free(o);
		return;
	}
	struct tariff_pick assigned = {0}, active = {0}, pick;
	tariff_from_row(&res[0], 0, 1, &assigned);
	if (res[1].nrows)
		tariff_from_row(&res[1], 0, 0, &active);
	const char *serial = evcs_db_cell(&res[0], 0, 0);
	tariff_resolve(o->core, o->tenant, serial, &assigned, &active, &pick);
	json_t *r = json_pack("{s:b}", "found", pick.found);
	json_object_set_new(r, "tariff", pick.found ? tariff_json(&pick) : json_null());
	evcs_store_finish(o->call, EVCS_OK, r);
	op_free(o);
}

static void op_tariff_for_pile(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	struct op *o = op_new(s, call, args, "tariff.for_pile");
	if (!o)
		return;
	o->tenant = tenant;
	evcs_db_txn_t *t = evcs_db_txn_new(o->core->db);
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id)};
	evcs_db_txn_add(t, tenant,
			"SELECT p.serial, " TARIFF_COLS " FROM piles p LEFT JOIN tariffs t ON "
			"t.tenant_id = p.tenant_id AND t.id = p.tariff_id WHERE p.tenant_id = ? AND p.id = ?",
			p, 1, 0);
	evcs_db_txn_add(t, tenant,
			"SELECT " TARIFF_COLS " FROM tariffs t WHERE t.tenant_id = ? AND t.state = 'active' "
			"ORDER BY t.id DESC LIMIT 1",
			NULL, 0, 0);
	int rc = evcs_db_txn_submit(t, EVCS_DB_IDEMPOTENT, tariff_for_pile_done, o);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "tariff.for_pile");
		op_free(o);
	}
}

/* ---- simple single-statement operations --------------------------------------------------- */

/* Finish with {"updated": affected rows of the first statement} (or the given key). */
struct simple_op {
	struct op o;
	const char *key;
};

static void simple_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
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

static struct simple_op *simple_new(evcs_store_t *s, evcs_store_call_t *call, json_t *args,
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

static void simple_submit_rc(struct simple_op *so, int rc)
{
	if (rc != EVCS_OK) {
		fail_submit(so->o.call, rc, so->o.name);
		op_free(&so->o);
	}
}

static void op_pile_offline(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	struct simple_op *so = simple_new(s, call, args, "pile.offline", "updated");
	if (!so)
		return;
	evcs_db_txn_t *t = evcs_db_txn_new(so->o.core->db);
	evcs_db_param_t p[] = {EVCS_DB_INT(opt_int(args, "ts_ms", now_ms())), EVCS_DB_INT(pile_id)};
	evcs_db_txn_add(t, tenant,
			"UPDATE pile_presence SET online = 0, last_seen_ms = GREATEST(last_seen_ms, ?) "
			"WHERE tenant_id = ? AND pile_id = ?",
			p, 2, 0);
	evcs_db_param_t c[] = {EVCS_DB_INT(pile_id)};
	evcs_db_txn_add(t, tenant, "UPDATE connectors SET status = 0 WHERE tenant_id = ? AND pile_id = ?",
			c, 1, 0);
	simple_submit_rc(so, evcs_db_txn_submit(t, EVCS_DB_IDEMPOTENT, simple_done, so));
}

static void op_gun_status(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, gun, status;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "gun", gun);
	REQ_INT(args, "status", status);
	if (gun < 1 || gun > 99) {
		evcs_store_fail(call, EVCS_EINVAL, "gun", "1..99 expected");
		return;
	}
	if (status < 0 || status > 3) {
		evcs_store_fail(call, EVCS_EINVAL, "status", "0..3 expected");
		return;
	}
	struct simple_op *so = simple_new(s, call, args, "gun.status", "updated");
	if (!so)
		return;
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id),
			       EVCS_DB_INT(gun),
			       EVCS_DB_INT(status),
			       EVCS_DB_INT(opt_int(args, "plugged", 0) ? 1 : 0),
			       EVCS_DB_INT(opt_int(args, "gun_returned", 2) & 0xFF),
			       EVCS_DB_INT(opt_int(args, "fault", 0) & 0xFFFFFFFF),
			       EVCS_DB_INT(opt_int(args, "ts_ms", now_ms()))};
	simple_submit_rc(
	    so, evcs_db_query(so->o.core->db, tenant,
			      "INSERT INTO connectors (tenant_id, pile_id, gun_no, status, plugged, gun_returned, "
			      "fault_code, status_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE "
			      "status = VALUES(status), plugged = VALUES(plugged), gun_returned = "
			      "VALUES(gun_returned), fault_code = VALUES(fault_code), status_ms = VALUES(status_ms)",
			      p, 7, EVCS_DB_IDEMPOTENT, simple_done, so));
}

/* ---- batched operations ------------------------------------------------------------------ */

static void batch_done(int st, size_t rows, void *ud)
{
	if (st != EVCS_OK)
		evcs_log(EVCS_LOG_WARNING, COMP, 0, NULL, "batch %s: %zu rows not written (%s)",
			 (const char *)ud, rows, evcs_status_str(st));
}

static int ensure_batches(evcs_core_t *core)
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

static void op_pile_seen(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	if (ensure_batches(evcs_store_core(s)) < 0) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "cannot create the batch");
		return;
	}
	evcs_db_param_t row[] = {EVCS_DB_INT(pile_id), EVCS_DB_INT(tenant),
				 EVCS_DB_INT(opt_int(args, "ts_ms", now_ms()))};
	int rc = evcs_db_batch_add(OPS(evcs_store_core(s))->seen, row);
	if (rc != EVCS_OK && rc != EVCS_EBUSY) {
		evcs_store_fail(call, map_db_status(rc), NULL, "cannot queue");
		return;
	}
	evcs_store_finish(call, EVCS_OK, json_pack("{s:b}", "queued", 1));
}

static int sample_add(evcs_core_t *core, json_t *a, int64_t session_id)
{
	evcs_db_param_t row[] = {EVCS_DB_INT(session_id),
				 EVCS_DB_INT(opt_int(a, "ts_ms", now_ms())),
				 EVCS_DB_INT(opt_int(a, "kwh", 0)),
				 EVCS_DB_INT(opt_int(a, "amount", 0)),
				 EVCS_DB_INT(opt_int(a, "voltage_dv", 0)),
				 EVCS_DB_INT(opt_int(a, "current_da", 0)),
				 EVCS_DB_INT(opt_int(a, "soc", 0)),
				 EVCS_DB_INT(opt_int(a, "gun_temp_c", 0)),
				 EVCS_DB_INT(opt_int(a, "batt_max_temp_c", 0)),
				 EVCS_DB_INT(opt_int(a, "remaining_min", 0))};
	int rc = evcs_db_batch_add(OPS(core)->samples, row);
	return rc == EVCS_EBUSY ? EVCS_OK : rc;
}

/* Live figures on the session row (what an app polls while charging). Fire and forget: the
 * time series row is the record; a lost live update is overwritten by the next sample. */
static void live_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	if (st != EVCS_OK && st != EVCS_EUNAVAIL)
		evcs_log(EVCS_LOG_WARNING, COMP, 0, NULL, "live session update: %s", errmsg);
}

static void sample_live(evcs_core_t *core, int64_t tenant, json_t *a, int64_t session_id)
{
	int64_t soc = opt_int(a, "soc", -1);
	evcs_db_param_t p[] = {EVCS_DB_INT(opt_int(a, "kwh", 0)), EVCS_DB_INT(opt_int(a, "amount", 0)),
			       soc >= 0 && soc <= 255 ? EVCS_DB_INT(soc) : EVCS_DB_NULL,
			       EVCS_DB_INT(opt_int(a, "ts_ms", now_ms())), EVCS_DB_INT(session_id)};
	evcs_db_query(core->db, tenant,
		      "UPDATE charging_sessions SET live_kwh = ?, live_amount = ?, live_soc = ?, live_ms = ? "
		      "WHERE tenant_id = ? AND id = ? AND state IN ('starting','charging','stopping')",
		      p, 5, EVCS_DB_IDEMPOTENT, live_done, NULL);
}

static void sample_lookup_done(int st, const evcs_db_result_t *res, size_t nres,
			       const char *errmsg, void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "meter.sample", errmsg);
	} else if (res[0].nrows == 0) {
		evcs_store_finish(o->call, EVCS_OK,
				  json_pack("{s:b, s:s}", "queued", 0, "reason", "no_session"));
	} else {
		int64_t sid = cell_i64(&res[0], 0, 0, 0);
		int rc = sample_add(o->core, o->args, sid);
		if (rc == EVCS_OK) {
			sample_live(o->core, o->tenant, o->args, sid);
			evcs_store_finish(o->call, EVCS_OK,
					  json_pack("{s:b, s:I}", "queued", 1, "session_id", (json_int_t)sid));
		} else {
			evcs_store_fail(o->call, map_db_status(rc), NULL, "cannot queue");
		}
	}
	op_free(o);
}

static void op_meter_sample(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	evcs_core_t *core = evcs_store_core(s);
	if (ensure_batches(core) < 0) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "cannot create the batch");
		return;
	}
	int64_t sid = opt_int(args, "session_id", 0);
	if (sid > 0) {
		int rc = sample_add(core, args, sid);
		if (rc != EVCS_OK) {
			evcs_store_fail(call, map_db_status(rc), NULL, "cannot queue");
			return;
		}
		sample_live(core, tenant, args, sid);
		evcs_store_finish(call, EVCS_OK,
				  json_pack("{s:b, s:I}", "queued", 1, "session_id", (json_int_t)sid));
		return;
	}
	const char *trade;
	REQ_STR(args, "trade_no", trade);
	struct op *o = op_new(s, call, args, "meter.sample");
	if (!o)
		return;
	o->tenant = tenant;
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
	int rc = evcs_db_query(core->db, tenant,
			       "SELECT id FROM charging_sessions WHERE tenant_id = ? AND pile_id = ? AND trade_no = ?",
			       p, 2, 0, sample_lookup_done, o);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "meter.sample");
		op_free(o);
	}
}

static void op_event_store(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant;
	const char *name;
	REQ_INT(args, "tenant_id", tenant);
	REQ_STR(args, "name", name);
	if (ensure_batches(evcs_store_core(s)) < 0) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "cannot create the batch");
		return;
	}
	const char *trade = opt_str(args, "trade_no");
	const char *pile = opt_str(args, "pile");
	/* a trade number of zeros means "no session" (BMS frames outside an order) */
	int has_trade = trade && strspn(trade, "0") != strlen(trade);
	char actor[64], action[64];
	snprintf(actor, sizeof actor, "plugin:%s", evcs_store_caller(call));
	snprintf(action, sizeof action, "pile_event.%s", name);
	json_t *d = json_object();
	static const char *const keep[] = {"pile", "gun", "frame", "trade_no", "fields", NULL};
	for (int i = 0; keep[i]; i++) {
		json_t *v = json_object_get(args, keep[i]);
		if (v)
			json_object_set(d, keep[i], v);
	}
	char *js = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	evcs_db_param_t row[] = {EVCS_DB_INT(tenant),
				 EVCS_DB_STR(actor),
				 EVCS_DB_STR(action),
				 EVCS_DB_STR(has_trade ? "session" : "pile"),
				 EVCS_DB_STR(has_trade ? trade : (pile ? pile : "")),
				 EVCS_DB_STR(js),
				 EVCS_DB_INT(opt_int(args, "ts_ms", now_ms()))};
	int rc = evcs_db_batch_add(OPS(evcs_store_core(s))->events, row);
	free(js);
	if (rc != EVCS_OK && rc != EVCS_EBUSY) {
		evcs_store_fail(call, map_db_status(rc), NULL, "cannot queue");
		return;
	}
	evcs_store_finish(call, EVCS_OK, json_pack("{s:b}", "queued", 1));
}

/* ---- sessions -------------------------------------------------------------------------- */

static int valid_trade(const char *t) { return is_hex_upper(t, 32); }

static const char *const start_modes[] = {"app", "card", "offline_card", "vin", "operator",
					  "partner", NULL};

static int valid_start_mode(const char *m)
{
	for (int i = 0; m && start_modes[i]; i++)
		if (strcmp(m, start_modes[i]) == 0)
			return 1;
	return 0;
}

static void session_create_done(int st, const evcs_db_result_t *res, size_t nres,
				const char *errmsg, void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "session.create", errmsg);
	} else {
		evcs_store_finish(o->call, EVCS_OK,
				  json_pack("{s:I, s:b}", "session_id", (json_int_t)res[0].insert_id,
					    "created", res[0].affected == 1));
	}
	op_free(o);
}

static void op_session_create(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, gun;
	const char *trade, *mode;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "gun", gun);
	REQ_STR(args, "trade_no", trade);
	REQ_STR(args, "start_mode", mode);
	if (!valid_trade(trade)) {
		evcs_store_fail(call, EVCS_EINVAL, "trade_no", "32 hex digits expected");
		return;
	}
	if (!valid_start_mode(mode)) {
		evcs_store_fail(call, EVCS_EINVAL, "start_mode",
				"app, card, offline_card, vin, operator or partner expected");
		return;
	}
	if (gun < 1 || gun > 99) {
		evcs_store_fail(call, EVCS_EINVAL, "gun", "1..99 expected");
		return;
	}
	struct tariff_pick tp = {0};
	json_t *tj = json_object_get(args, "tariff");
	if (tj && !json_is_null(tj) && tariff_parse(tj, &tp) < 0) {
		evcs_store_fail(call, EVCS_EINVAL, "tariff", "not a tariff model");
		return;
	}
	/* the snapshot travels in bill until the session is priced (the row itself is immutable
	 * once referenced, but a script-made model has no row) */
	char *bill = NULL;
	if (tp.found) {
		json_t *b = json_pack("{s:o}", "tariff_snapshot", tariff_json(&tp));
		bill = json_dumps(b, JSON_COMPACT);
		json_decref(b);
	}
	const char *pcard = opt_str(args, "physical_card"), *vin = opt_str(args, "vin");
	struct op *o = op_new(s, call, args, "session.create");
	if (!o) {
		free(bill);
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id),
			       EVCS_DB_INT(pile_id),
			       EVCS_DB_INT(pile_id),
			       EVCS_DB_INT(gun),
			       EVCS_DB_INT(gun),
			       EVCS_DB_STR(trade),
			       EVCS_DB_STR(mode),
			       opt_id(args, "driver_id"),
			       opt_id(args, "card_id"),
			       pcard && is_hex_upper(pcard, 16) ? EVCS_DB_STR(pcard) : EVCS_DB_NULL,
			       vin && *vin ? EVCS_DB_STR(vin) : EVCS_DB_NULL,
			       opt_id(args, "operator_user_id"),
			       opt_id(args, "partner_id"),
			       opt_str(args, "partner_seq") ? EVCS_DB_STR(opt_str(args, "partner_seq"))
							    : EVCS_DB_NULL,
			       tp.id > 0 ? EVCS_DB_INT(tp.id) : EVCS_DB_NULL,
			       bill ? EVCS_DB_STR(bill) : EVCS_DB_NULL,
			       EVCS_DB_INT(opt_int(args, "requested_ms", now_ms()))};
	int rc = evcs_db_query(
	    o->core->db, tenant,
	    "INSERT INTO charging_sessions SET tenant_id = ?, "
	    "station_id = (SELECT p.station_id FROM piles p WHERE p.tenant_id = ? AND p.id = ?), "
	    "pile_id = ?, "
	    "connector_id = (SELECT c.id FROM connectors c WHERE c.tenant_id = ? AND c.pile_id = ? AND c.gun_no = ?), "
	    "gun_no = ?, trade_no = ?, state = 'starting', start_mode = ?, driver_id = ?, card_id = ?, "
	    "physical_card = ?, vin = LEFT(?, 17), operator_user_id = ?, partner_id = ?, partner_seq = ?, "
	    "tariff_id = ?, bill = ?, requested_ms = ? "
	    /* the row may exist already: a retry, or an order recorded 'pending' by its requester
	     * that the protocol plugin now sends; that one moves on to
	     * starting and takes the tariff it starts under */
	    "ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), "
	    "state = IF(state = 'pending', 'starting', state), "
	    "tariff_id = COALESCE(tariff_id, VALUES(tariff_id)), bill = COALESCE(bill, VALUES(bill))",
	    p, 17, EVCS_DB_IDEMPOTENT, session_create_done, o);
	free(bill);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "session.create");
		op_free(o);
	}
}

/* 0x32 failure reasons (ykc.md §4 0x32); the operation is protocol-agnostic but these codes are
 * the most detailed vocabulary any supported protocol has, so they are the shared one. */
enum {
	AUTH_NO_ACCOUNT = 1,
	AUTH_FROZEN = 2,
	AUTH_LOW_BALANCE = 3,
	AUTH_PILE_DISABLED = 5,
	AUTH_BAD_PASSWORD = 7,
	AUTH_VIN_UNKNOWN = 9,
};

static void authorize_finish(struct op *o, int ok, int reason, const char *why,
			     const char *logical, int64_t balance, int64_t card_id, int64_t driver_id)
{
	json_t *r = json_pack("{s:b, s:i, s:s}", "authorised", ok, "fail_reason", ok ? 0 : reason,
			      "reason", ok ? "ok" : why);
	json_object_set_new(r, "logical_card", json_string(logical ? logical : "0000000000000000"));
	json_object_set_new(r, "balance", json_integer(balance));
	json_object_set_new(r, "card_id", card_id > 0 ? json_integer(card_id) : json_null());
	json_object_set_new(r, "driver_id", driver_id > 0 ? json_integer(driver_id) : json_null());
	evcs_store_finish(o->call, EVCS_OK, r);
	op_free(o);
}

/* The 16 password bytes a pile sends (password_md5, 32 hex) against the card's stored digest
 * (lower-case hex MD5), in both forms ykc.md §3.7 allows: the middle 16 hex characters as ASCII,
 * or the raw digest. Both are always compared, in constant time. No digest on file: no match. */
static int pin_matches(const char *pin_md5, const char *sent_hex)
{
	unsigned char sent[16], digest[16];
	size_t n = 0, m = 0;
	if (!pin_md5 || strlen(pin_md5) != 32 || !sent_hex || strlen(sent_hex) != 32 ||
	    !OPENSSL_hexstr2buf_ex(sent, sizeof sent, &n, sent_hex, '\0') || n != 16 ||
	    !OPENSSL_hexstr2buf_ex(digest, sizeof digest, &m, pin_md5, '\0') || m != 16)
		return 0;
	int ascii = CRYPTO_memcmp(sent, pin_md5 + 8, 16) == 0;
	int raw = CRYPTO_memcmp(sent, digest, 16) == 0;
	return ascii | raw;
}

/* ISO 3779 alphabet (no I, O, Q), as the vehicles CHECK: anything else cannot be registered */
static int valid_vin(const char *v)
{
	return v && strlen(v) == 17 && strspn(v, "0123456789ABCDEFGHJKLMNPRSTUVWXYZ") == 17;
}

static void authorize_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			   void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "session.authorize", errmsg);
		op_free(o);
		return;
	}
	const evcs_db_result_t *r = &res[0];
	int vin = opt_int(o->args, "start_mode", 0) == 3;
	if (r->nrows == 0) {
		if (vin)
			authorize_finish(o, 0, AUTH_VIN_UNKNOWN, "vin_unknown", NULL, 0, 0, 0);
		else
			authorize_finish(o, 0, AUTH_NO_ACCOUNT, "unknown_card", NULL, 0, 0, 0);
		return;
	}
	/* c.id, c.logical_no, c.status, c.driver_id, d.status, w.id, w.balance, w.credit_limit,
	 * w.status, pile status, c.pin_md5; a VIN start has the vehicle in the card's columns
	 * (no logical number, no PIN) */
	int64_t card_id = vin ? 0 : cell_i64(r, 0, 0, 0), driver = cell_i64(r, 0, 3, 0);
	const char *logical = evcs_db_cell(r, 0, 1);
	const char *cstatus = evcs_db_cell(r, 0, 2), *dstatus = evcs_db_cell(r, 0, 4);
	const char *wstatus = evcs_db_cell(r, 0, 8), *pstatus = evcs_db_cell(r, 0, 9);
	int64_t wallet = cell_i64(r, 0, 5, 0), balance = cell_i64(r, 0, 6, 0),
		credit = cell_i64(r, 0, 7, 0);
	int64_t min_balance = opt_int(o->args, "min_balance", 1);
	if (!pstatus || strcmp(pstatus, "enabled") != 0)
		authorize_finish(o, 0, AUTH_PILE_DISABLED, "pile_disabled", logical, 0, card_id, driver);
	else if (!cstatus || strcmp(cstatus, "active") != 0 || (dstatus && strcmp(dstatus, "active") != 0))
		authorize_finish(o, 0, AUTH_FROZEN, vin ? "vehicle_blocked" : "card_blocked", logical,
				 balance, card_id, driver);
	/* before the wallet checks, so a wrong PIN learns nothing about the account; a VIN start
	 * has no password to check */
	else if (!vin && opt_int(o->args, "need_password", 0) &&
		 !pin_matches(evcs_db_cell(r, 0, 10), opt_str(o->args, "password_md5")))
		authorize_finish(o, 0, AUTH_BAD_PASSWORD,
				 evcs_db_cell(r, 0, 10) ? "wrong_password" : "no_pin_on_file", logical, balance,
				 card_id, driver);
	else if (wallet <= 0)
		authorize_finish(o, 0, AUTH_NO_ACCOUNT, "no_wallet", logical, 0, card_id, driver);
	else if (wstatus && strcmp(wstatus, "active") != 0)
		authorize_finish(o, 0, AUTH_FROZEN, "wallet_frozen", logical, balance, card_id, driver);
	else if (balance + credit < min_balance)
		authorize_finish(o, 0, AUTH_LOW_BALANCE, "balance_too_low", logical, balance, card_id,
				 driver);
	else
		authorize_finish(o, 1, 0, NULL, logical, balance, card_id, driver);
}

static void op_session_authorize(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, mode;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "start_mode", mode);
	struct op *o = op_new(s, call, args, "session.authorize");
	if (!o)
		return;
	if (mode == 3) {
		/* the plugin passes the VIN in normal order (already un-reversed) */
		const char *vin = opt_str(args, "vin");
		if (!valid_vin(vin)) {
			authorize_finish(o, 0, AUTH_VIN_UNKNOWN, "bad_vin", NULL, 0, 0, 0);
			return;
		}
		evcs_db_param_t p[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(vin)};
		int rc = evcs_db_query(
		    o->core->db, tenant,
		    "SELECT v.id, NULL, v.status, v.driver_id, d.status, w.id, w.balance, w.credit_limit, "
		    "w.status, (SELECT p.status FROM piles p WHERE p.tenant_id = ? AND p.id = ?), NULL "
		    "FROM vehicles v JOIN drivers d ON d.tenant_id = v.tenant_id AND d.id = v.driver_id "
		    "LEFT JOIN wallets w ON w.tenant_id = v.tenant_id AND w.driver_id = v.driver_id "
		    "WHERE v.tenant_id = ? AND v.vin = ?",
		    p, 2, 0, authorize_done, o);
		if (rc != EVCS_OK) {
			fail_submit(call, rc, "session.authorize");
			op_free(o);
		}
		return;
	}
	const char *card = opt_str(args, "card");
	if (mode != 1 || !card || !is_hex_upper(card, 16)) {
		authorize_finish(o, 0, AUTH_NO_ACCOUNT, mode != 1 ? "unsupported_mode" : "bad_card",
				 NULL, 0, 0, 0);
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(card)};
	int rc = evcs_db_query(
	    o->core->db, tenant,
	    "SELECT c.id, c.logical_no, c.status, c.driver_id, d.status, w.id, w.balance, w.credit_limit, "
	    "w.status, (SELECT p.status FROM piles p WHERE p.tenant_id = ? AND p.id = ?), c.pin_md5 "
	    "FROM rfid_cards c LEFT JOIN drivers d ON d.tenant_id = c.tenant_id AND d.id = c.driver_id "
	    "LEFT JOIN wallets w ON w.tenant_id = c.tenant_id AND w.driver_id = c.driver_id "
	    "WHERE c.tenant_id = ? AND c.physical_no = ?",
	    p, 2, 0, authorize_done, o);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "session.authorize");
		op_free(o);
	}
}

static void op_session_started(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, result;
	const char *trade;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_STR(args, "trade_no", trade);
	REQ_INT(args, "result", result);
	int64_t reason = opt_int(args, "fail_reason", 0);
	int64_t ts = opt_int(args, "ts_ms", now_ms());
	struct simple_op *so = simple_new(s, call, args, "session.started", "updated");
	if (!so)
		return;
	evcs_db_txn_t *t = evcs_db_txn_new(so->o.core->db);
	/* reason 5 (not plugged) keeps the session starting: the pile may still send a success
	 * 0x33 within 60 s of the 0x34 (ykc.md §1.4) */
	evcs_db_param_t p[] = {EVCS_DB_INT(result), EVCS_DB_INT(reason), EVCS_DB_INT(result),
			       EVCS_DB_INT(ts),     EVCS_DB_INT(result), EVCS_DB_INT(reason),
			       EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
	evcs_db_txn_add(t, tenant,
			"UPDATE charging_sessions SET state = CASE WHEN ? = 1 THEN 'charging' WHEN ? = 5 THEN "
			"state ELSE 'failed' END, start_ms = IF(? = 1, ?, start_ms), "
			"start_fail_reason = IF(? = 1, NULL, ?) "
			"WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? AND state IN ('pending','starting')",
			p, 8, 0);
	int64_t gun = opt_int(args, "gun", 0);
	if (result == 1 && gun >= 1 && gun <= 99) {
		evcs_db_param_t c[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(trade), EVCS_DB_INT(pile_id),
				       EVCS_DB_INT(gun)};
		evcs_db_txn_add(t, tenant,
				"UPDATE connectors SET current_session_id = (SELECT s.id FROM charging_sessions s "
				"WHERE s.tenant_id = ? AND s.pile_id = ? AND s.trade_no = ?) "
				"WHERE tenant_id = ? AND pile_id = ? AND gun_no = ?",
				c, 4, 0);
	}
	simple_submit_rc(so, evcs_db_txn_submit(t, 0, simple_done, so));
}

static void op_session_stop_requested(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, gun;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "gun", gun);
	const char *trade = opt_str(args, "trade_no");
	const char *by = opt_str(args, "by");
	struct simple_op *so = simple_new(s, call, args, "session.stop_requested", "updated");
	if (!so)
		return;
	int rc;
	if (trade && valid_trade(trade)) {
		evcs_db_param_t p[] = {EVCS_DB_STR(by ? by : ""), EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
		rc = evcs_db_query(so->o.core->db, tenant,
				   "UPDATE charging_sessions SET state = 'stopping', stop_requested_by = LEFT(?, 64) "
				   "WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? "
				   "AND state IN ('starting','charging')",
				   p, 3, EVCS_DB_IDEMPOTENT, simple_done, so);
	} else {
		evcs_db_param_t p[] = {EVCS_DB_STR(by ? by : ""), EVCS_DB_INT(pile_id), EVCS_DB_INT(gun)};
		rc = evcs_db_query(so->o.core->db, tenant,
				   "UPDATE charging_sessions SET state = 'stopping', stop_requested_by = LEFT(?, 64) "
				   "WHERE tenant_id = ? AND pile_id = ? AND gun_no = ? "
				   "AND state IN ('starting','charging')",
				   p, 3, EVCS_DB_IDEMPOTENT, simple_done, so);
	}
	simple_submit_rc(so, rc);
}

static void op_session_stopped(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	const char *trade;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_STR(args, "trade_no", trade);
	const char *state = opt_str(args, "state");
	if (!state)
		state = "abnormal";
	if (strcmp(state, "abnormal") != 0 && strcmp(state, "failed") != 0) {
		evcs_store_fail(call, EVCS_EINVAL, "state", "abnormal or failed expected");
		return;
	}
	int failed = strcmp(state, "failed") == 0;
	int64_t reason = opt_int(args, "stop_reason", -1);
	const char *text = opt_str(args, "stop_reason_text");
	struct simple_op *so = simple_new(s, call, args, "session.stopped", "updated");
	if (!so)
		return;
	evcs_db_txn_t *t = evcs_db_txn_new(so->o.core->db);
	evcs_db_param_t p[] = {EVCS_DB_STR(state),
			       reason >= 0 && reason <= 65535 ? EVCS_DB_INT(reason) : EVCS_DB_NULL,
			       EVCS_DB_STR(text ? text : ""),
			       EVCS_DB_INT(opt_int(args, "ts_ms", now_ms())),
			       EVCS_DB_INT(pile_id),
			       EVCS_DB_STR(trade)};
	evcs_db_txn_add(t, tenant,
			failed ? "UPDATE charging_sessions SET state = ?, stop_reason = ?, stop_reason_text = "
				 "LEFT(?, 128), end_ms = ? WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? "
				 "AND state IN ('pending','starting')"
			       : "UPDATE charging_sessions SET state = ?, stop_reason = ?, stop_reason_text = "
				 "LEFT(?, 128), end_ms = ? WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? "
				 "AND state IN ('pending','starting','charging','stopping')",
			p, 6, 0);
	evcs_db_param_t c[] = {EVCS_DB_INT(pile_id), EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
	evcs_db_txn_add(t, tenant,
			"UPDATE connectors SET current_session_id = NULL WHERE tenant_id = ? AND pile_id = ? "
			"AND current_session_id = (SELECT s.id FROM charging_sessions s WHERE s.tenant_id = ? "
			"AND s.pile_id = ? AND s.trade_no = ?)",
			c, 3, 0);
	simple_submit_rc(so, evcs_db_txn_submit(t, 0, simple_done, so));
}

/* ---- alarms ------------------------------------------------------------------------------ */

static void publish_alarm(evcs_core_t *core, int raise, int64_t tenant, const char *pile, int gun,
			  const char *code, const char *severity, const char *message,
			  int64_t alarm_id)
{
	if (!core->bus)
		return;
	evcs_field_t f[] = {EVCS_FS("code", code), EVCS_FI("alarm_id", alarm_id),
			    EVCS_FS("severity", severity ? severity : ""),
			    EVCS_FS("message", message ? message : "")};
	evcs_event_t ev = {.size = sizeof ev,
			   .type = raise ? EVCS_EV_ALARM_RAISED : EVCS_EV_ALARM_CLEARED,
			   .tenant_id = tenant, .pile = pile, .gun = gun, .fields = f,
			   .nfields = raise ? 4 : 2};
	evcs_bus_publish(core->bus, &ev, COMP);
}

static const char *valid_severity(const char *s)
{
	static const char *const sev[] = {"info", "warning", "major", "critical", NULL};
	for (int i = 0; s && sev[i]; i++)
		if (strcmp(s, sev[i]) == 0)
			return sev[i];
	return NULL;
}

static void alarm_raise_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			     void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "alarm.raise", errmsg);
		op_free(o);
		return;
	}
	int fresh = res[0].affected > 0;
	json_t *r = json_pack("{s:b}", "raised", fresh);
	if (fresh) {
		json_object_set_new(r, "alarm_id", json_integer((json_int_t)res[0].insert_id));
		publish_alarm(o->core, 1, o->tenant, opt_str(o->args, "pile"),
			      (int)opt_int(o->args, "gun", 0), opt_str(o->args, "code"),
			      opt_str(o->args, "severity") ? opt_str(o->args, "severity") : "warning",
			      opt_str(o->args, "message"), (int64_t)res[0].insert_id);
	}
	evcs_store_finish(o->call, EVCS_OK, r);
	op_free(o);
}

static void op_alarm_raise(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant;
	const char *code;
	REQ_INT(args, "tenant_id", tenant);
	REQ_STR(args, "code", code);
	const char *sev = opt_str(args, "severity");
	if (sev && !valid_severity(sev)) {
		evcs_store_fail(call, EVCS_EINVAL, "severity", "info, warning, major or critical");
		return;
	}
	json_t *det = json_object_get(args, "details");
	char *dj = det && !json_is_null(det) ? json_dumps(det, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	struct op *o = op_new(s, call, args, "alarm.raise");
	if (!o) {
		free(dj);
		return;
	}
	o->tenant = tenant;
	const char *msg = opt_str(args, "message");
	evcs_db_param_t p[] = {opt_id(args, "pile_id"),
			       EVCS_DB_INT(opt_int(args, "gun", 0) & 0xFF),
			       opt_id(args, "session_id"),
			       EVCS_DB_STR(code),
			       EVCS_DB_STR(sev ? sev : "warning"),
			       EVCS_DB_STR(msg ? msg : ""),
			       dj ? EVCS_DB_STR(dj) : EVCS_DB_NULL,
			       EVCS_DB_STR(evcs_store_caller(call))};
	int rc = evcs_db_query(o->core->db, tenant,
			       "INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
			       "code = LEFT(?, 64), severity = ?, message = LEFT(?, 512), details = ?, source = LEFT(?, 32)",
			       p, 8, 0, alarm_raise_done, o);
	free(dj);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "alarm.raise");
		op_free(o);
	}
}

static void alarm_clear_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			     void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "alarm.clear", errmsg);
		op_free(o);
		return;
	}
	if (res[0].affected > 0)
		publish_alarm(o->core, 0, o->tenant, opt_str(o->args, "pile"),
			      (int)opt_int(o->args, "gun", 0), opt_str(o->args, "code"), NULL, NULL, 0);
	evcs_store_finish(o->call, EVCS_OK, json_pack("{s:I}", "cleared", (json_int_t)res[0].affected));
	op_free(o);
}

static void op_alarm_clear(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant;
	const char *code;
	REQ_INT(args, "tenant_id", tenant);
	REQ_STR(args, "code", code);
	struct op *o = op_new(s, call, args, "alarm.clear");
	if (!o)
		return;
	o->tenant = tenant;
	evcs_db_param_t p[] = {EVCS_DB_INT(now_ms()), EVCS_DB_INT(opt_int(args, "pile_id", 0)),
			       EVCS_DB_INT(opt_int(args, "gun", 0)), EVCS_DB_STR(code)};
	int rc = evcs_db_query(o->core->db, tenant,
			       "UPDATE alarms SET state = 'cleared', cleared_ms = ? WHERE tenant_id = ? "
			       "AND IFNULL(pile_id, 0) = ? AND gun_no = ? AND code = ? AND state <> 'cleared'",
			       p, 4, EVCS_DB_IDEMPOTENT, alarm_clear_done, o);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "alarm.clear");
		op_free(o);
	}
}

/* ---- txn.record -------------------------------------------------------------------------- */

/* Fields of a record, in transaction_records column order (all integers). */
static const char *const rec_int_fields[] = {
    "sharp_price", "sharp_kwh", "sharp_loss_kwh", "sharp_amount", "peak_price",
    "peak_kwh", "peak_loss_kwh", "peak_amount", "flat_price", "flat_kwh",
    "flat_loss_kwh", "flat_amount", "valley_price", "valley_kwh", "valley_loss_kwh",
    "valley_amount", "meter_start_kwh", "meter_stop_kwh", "total_kwh", "total_loss_kwh",
    "total_amount", "trade_flag", "stop_reason", NULL};
#define REC_NINT 23

struct rec_op {
	struct op o;
	json_t *rec; /* borrowed from args */
	int64_t gun;
	const char *trade;
	int64_t session_id, record_id, alarm_id;
	int64_t total, pile_amount, total_kwh;
	int mismatch;
	int first; /* index of the session statement in the write transaction */
	char alarm_code[64];
};

static void rec_read(struct rec_op *r);

static const char *start_mode_of_flag(int64_t flag)
{
	switch (flag) {
	case 2: return "card";
	case 4: return "offline_card";
	case 5: return "vin";
	default: return "app";
	}
}

static void rec_write_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			   void *ud)
{
	struct rec_op *r = ud;
	if (st == EVCS_EEXIST && r->o.attempt < 2) {
		/* a concurrent copy of the same record won the race: it is now a duplicate */
		rec_read(r);
		return;
	}
	if (st != EVCS_OK) {
		fail_db(r->o.call, st, "txn.record", errmsg);
		op_free(&r->o);
		return;
	}
	/* statement `first` is the session insert/update, then the record, then the alarm */
	const evcs_db_result_t *rs = res + r->first;
	if (r->session_id <= 0)
		r->session_id = (int64_t)rs[0].insert_id;
	r->record_id = (int64_t)rs[1].insert_id;
	if (r->mismatch && nres > (size_t)r->first + 2 && rs[2].affected > 0)
		r->alarm_id = (int64_t)rs[2].insert_id;
	json_t *o = json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:b}", "stored", 1, "duplicate", 0,
			      "session_id", (json_int_t)r->session_id, "record_id",
			      (json_int_t)r->record_id, "total_kwh", (json_int_t)r->total_kwh,
			      "total_amount", (json_int_t)r->total, "pile_amount",
			      (json_int_t)r->pile_amount, "mismatch", r->mismatch);
	if (r->alarm_id > 0) {
		json_object_set_new(o, "alarm_id", json_integer(r->alarm_id));
		char msg[160];
		snprintf(msg, sizeof msg, "bill differs from the pile: platform %lld, pile %lld (0.00001 yuan)",
			 (long long)r->total, (long long)r->pile_amount);
		publish_alarm(r->o.core, 1, r->o.tenant, opt_str(r->o.args, "pile"), (int)r->gun,
			      r->alarm_code, "warning", msg, r->alarm_id);
	}
	evcs_store_finish(r->o.call, EVCS_OK, o);
	op_free(&r->o);
}

/* Plain pricing: per period, electricity and service each kWh x rate rounded once (half away
 * from zero, as evcs.mul_div in the default tariff script), the total the exact sum. */
static void price_plain(const evcs_tariff_model_t *m, const int64_t kwh[4], int64_t amounts[4],
			int64_t *elec, int64_t *service)
{
	*elec = *service = 0;
	for (int p = 0; p < 4; p++) {
		int64_t e = 0, s = 0;
		evcs_mul_div(kwh[p], m->elec[p], 10000, &e);
		evcs_mul_div(kwh[p], m->service[p], 10000, &s);
		amounts[p] = e + s;
		*elec += e;
		*service += s;
	}
}

static void rec_conflict_done(int st, const evcs_db_result_t *res, size_t nres,
			      const char *errmsg, void *ud)
{
	struct rec_op *r = ud;
	if (st != EVCS_OK) {
		fail_db(r->o.call, st, "txn.record", errmsg);
		op_free(&r->o);
		return;
	}
	int64_t alarm_id = res[0].affected > 0 ? (int64_t)res[0].insert_id : 0;
	evcs_log(EVCS_LOG_WARNING, COMP, r->o.tenant, opt_str(r->o.args, "pile"),
		 "record %s resent with different content: stored copy kept, conflict %llu", r->trade,
		 (unsigned long long)res[1].insert_id);
	if (alarm_id)
		publish_alarm(r->o.core, 1, r->o.tenant, opt_str(r->o.args, "pile"), (int)r->gun,
			      r->alarm_code, "major", "transaction record resent with different content",
			      alarm_id);
	json_t *o = json_pack("{s:b, s:b, s:b, s:I, s:I}", "stored", 1, "duplicate", 1, "conflict", 1,
			      "session_id", (json_int_t)r->session_id, "record_id",
			      (json_int_t)r->record_id);
	evcs_store_finish(r->o.call, EVCS_OK, o);
	op_free(&r->o);
}

static void rec_duplicate(struct rec_op *r, const evcs_db_result_t *R0)
{
	r->record_id = cell_i64(R0, 0, 0, 0);
	r->session_id = cell_i64(R0, 0, 1, 0);
	const char *stored_raw = evcs_db_cell(R0, 0, 2);
	const char *raw = opt_str(r->o.args, "raw_hex");
	if (!raw || !stored_raw || strcmp(raw, stored_raw) == 0) {
		json_t *o = json_pack("{s:b, s:b, s:I, s:I}", "stored", 1, "duplicate", 1, "session_id",
				      (json_int_t)r->session_id, "record_id", (json_int_t)r->record_id);
		evcs_store_finish(r->o.call, EVCS_OK, o);
		op_free(&r->o);
		return;
	}
	json_t *diff = json_object();
	for (int i = 0; rec_int_fields[i]; i++) {
		int64_t was = cell_i64(R0, 0, 3 + (unsigned)i, 0);
		int64_t now = opt_int(r->rec, rec_int_fields[i], 0);
		if (was != now)
			json_object_set_new(diff, rec_int_fields[i], json_pack("[I, I]", (json_int_t)was,
									     (json_int_t)now));
	}
	if (json_object_size(diff) == 0)
		json_object_set_new(diff, "raw_hex", json_pack("[s, s]", stored_raw, raw));
	char *dj = json_dumps(diff, JSON_COMPACT);
	json_decref(diff);
	snprintf(r->alarm_code, sizeof r->alarm_code, "record.conflict.%s", r->trade);
	evcs_db_txn_t *t = evcs_db_txn_new(r->o.core->db);
	const char *caller = evcs_store_caller(r->o.call);
	evcs_db_param_t a[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_INT(r->gun & 0xFF),
			       r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_NULL,
			       EVCS_DB_STR(r->alarm_code), EVCS_DB_STR(dj), EVCS_DB_STR(caller)};
	evcs_db_txn_add(t, r->o.tenant,
			"INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
			"code = ?, severity = 'major', message = 'transaction record resent with different "
			"content; the stored copy is kept', details = ?, source = LEFT(?, 32)",
			a, 6, 0);
	const char *peer = opt_str(r->o.args, "peer");
	evcs_db_param_t c[] = {EVCS_DB_INT(r->record_id), EVCS_DB_INT(r->o.pile_id),
			       EVCS_DB_STR(r->trade),     EVCS_DB_STR(raw),
			       EVCS_DB_STR(dj),           EVCS_DB_REFID(0),
			       EVCS_DB_STR(peer ? peer : "")};
	evcs_db_txn_add(t, r->o.tenant,
			"INSERT INTO record_conflicts SET tenant_id = ?, record_id = ?, pile_id = ?, trade_no = ?, "
			"raw_hex = ?, diff = ?, alarm_id = NULLIF(?, 0), peer = LEFT(?, 64)",
			c, 7, 0);
	free(dj);
	int rc = evcs_db_txn_submit(t, 0, rec_conflict_done, r);
	if (rc != EVCS_OK) {
		fail_submit(r->o.call, rc, "txn.record");
		op_free(&r->o);
	}
}

static void rec_read_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			  void *ud)
{
	struct rec_op *r = ud;
	evcs_core_t *core = r->o.core;
	if (st != EVCS_OK) {
		fail_db(r->o.call, st, "txn.record", errmsg);
		op_free(&r->o);
		return;
	}
	const evcs_db_result_t *R0 = &res[0], *R1 = &res[1], *R2 = &res[2];
	if (R2->nrows == 0) {
		evcs_store_fail(r->o.call, EVCS_EINVAL, "pile_id", "no such pile in this tenant");
		op_free(&r->o);
		return;
	}
	if (R0->nrows > 0) {
		rec_duplicate(r, R0);
		return;
	}
	json_t *rec = r->rec;
	int64_t tenant = r->o.tenant;
	/* the session (when the platform opened it) and the tariff it was started under */
	const char *state = NULL;
	struct tariff_pick tp = {0};
	r->session_id = 0;
	if (R1->nrows > 0) {
		r->session_id = cell_i64(R1, 0, 0, 0);
		state = evcs_db_cell(R1, 0, 1);
		if (tariff_from_row(R1, 0, 3, &tp) < 0) {
			const char *bill = evcs_db_cell(R1, 0, 2);
			json_t *b = bill ? json_loads(bill, 0, NULL) : NULL;
			if (b)
				tariff_parse(json_object_get(b, "tariff_snapshot"), &tp);
			json_decref(b);
		}
	}
	int64_t station = cell_i64(R2, 0, 0, 0);
	const char *serial = evcs_db_cell(R2, 0, 1);
	if (!tp.found) {
		/* an offline session (or one started elsewhere): price with what the pile has now */
		struct tariff_pick assigned = {0};
		tariff_from_row(R2, 0, 2, &assigned);
		tariff_resolve(core, tenant, serial, &assigned, NULL, &tp);
	}
	int64_t kwh[4], amounts[4] = {0}, elec = 0, service = 0, total = 0;
	for (int p = 0; p < 4; p++) {
		char k[24];
		snprintf(k, sizeof k, "%s_kwh", period_names[p]);
		kwh[p] = opt_int(rec, k, 0);
	}
	int64_t start_ms = opt_int(rec, "start_ms", 0), end_ms = opt_int(rec, "end_ms", 0);
	r->pile_amount = opt_int(rec, "total_amount", 0);
	r->total_kwh = opt_int(rec, "total_kwh", 0);
	json_t *billj = NULL;
	int priced = 0;
	/* Price through the tenant's tariff script whenever one is loaded (the shipped
	 * default implements 尖峰平谷 over the snapshot), so every stored bill is a list
	 * of line items; the plain rates are the fallback when no script is there. */
	if (tp.found && core->scripts && evcs_script_digest(core->scripts, tenant, "tariff")) {
		evcs_session_t sess = {0};
		sess.tenant_id = tenant;
		sess.pile = serial;
		sess.gun = (int)r->gun;
		sess.trade_no = r->trade;
		sess.start = start_ms / 1000;
		sess.stop = end_ms / 1000;
		sess.tz_offset_min = 480;
		for (int p = 0; p < 4; p++)
			sess.period_kwh[p] = kwh[p];
		sess.tariff = &tp.m;
		sess.pile_amount = r->pile_amount;
		evcs_bill_t *bill = calloc(1, sizeof *bill);
		char *err = NULL;
		if (bill && evcs_script_quote(core->scripts, tenant, &sess, bill, &err) == EVCS_OK) {
			for (size_t i = 0; i < bill->nitems; i++) {
				const evcs_bill_item_t *it = &bill->items[i];
				if (it->period >= 0 && it->period < 4 &&
				    (it->kind == EVCS_ITEM_ENERGY || it->kind == EVCS_ITEM_SERVICE))
					amounts[it->period] += it->amount;
				if (it->kind == EVCS_ITEM_ENERGY)
					elec += it->amount;
				else if (it->kind == EVCS_ITEM_SERVICE)
					service += it->amount;
			}
			total = bill->total;
			char *bj = evcs_bill_to_json(bill);
			billj = bj ? json_loads(bj, 0, NULL) : NULL;
			free(bj);
			if (billj)
				json_object_set_new(billj, "pricing", json_string("script"));
			priced = 1;
		} else {
			evcs_log(EVCS_LOG_WARNING, COMP, tenant, serial,
				 "tariff script could not price %s (%s); using the plain rates", r->trade,
				 err ? err : "?");
		}
		free(err);
		free(bill);
	}
	if (!priced && tp.found) {
		price_plain(&tp.m, kwh, amounts, &elec, &service);
		total = elec + service;
		billj = json_pack("{s:s, s:s, s:I, s:I, s:I}", "pricing", "rates", "tariff_model",
				  tp.m.model, "elec_amount", (json_int_t)elec, "service_amount",
				  (json_int_t)service, "total", (json_int_t)total);
		priced = 1;
	}
	if (!priced) {
		/* no tariff anywhere: the pile's own unit prices are all there is; say so */
		for (int p = 0; p < 4; p++) {
			char k[24];
			snprintf(k, sizeof k, "%s_price", period_names[p]);
			evcs_mul_div(kwh[p], opt_int(rec, k, 0), 10000, &amounts[p]);
			total += amounts[p];
		}
		elec = total;
		billj = json_pack("{s:s, s:I}", "pricing", "pile_prices", "total", (json_int_t)total);
	}
	if (billj && tp.found)
		json_object_set_new(billj, "tariff_snapshot", tariff_json(&tp));
	char *bill_text = billj ? json_dumps(billj, JSON_COMPACT) : NULL;
	json_decref(billj);
	r->total = total;
	long long tol = 1000;
	char cerr[160];
	if (evcs_conf_int(core->conf, "scripts", "amount_tolerance", 1000, 0, 1000000000LL, &tol, cerr,
			  sizeof cerr) < 0)
		tol = 1000;
	r->mismatch = evcs_bill_mismatch(total, r->pile_amount, tol);
	snprintf(r->alarm_code, sizeof r->alarm_code, "bill.mismatch.%s", r->trade);

	evcs_db_txn_t *t = evcs_db_txn_new(core->db);
	r->first = 0;
	const char *vin = opt_str(rec, "vin"), *pcard = opt_str(rec, "physical_card");
	const char *srt = opt_str(r->o.args, "stop_reason_text");
	int64_t stop_reason = opt_int(rec, "stop_reason", 0);
	evcs_db_param_t fig[] = {
	    EVCS_DB_INT(end_ms),        EVCS_DB_INT(stop_reason),
	    EVCS_DB_STR(srt ? srt : ""), EVCS_DB_INT(opt_int(rec, "meter_start_kwh", 0)),
	    EVCS_DB_INT(opt_int(rec, "meter_stop_kwh", 0)),
	    EVCS_DB_INT(kwh[0]), EVCS_DB_INT(amounts[0]), EVCS_DB_INT(kwh[1]), EVCS_DB_INT(amounts[1]),
	    EVCS_DB_INT(kwh[2]), EVCS_DB_INT(amounts[2]), EVCS_DB_INT(kwh[3]), EVCS_DB_INT(amounts[3]),
	    EVCS_DB_INT(r->total_kwh),  EVCS_DB_INT(elec), EVCS_DB_INT(service), EVCS_DB_INT(total),
	    EVCS_DB_INT(r->pile_amount), bill_text ? EVCS_DB_STR(bill_text) : EVCS_DB_NULL,
	    EVCS_DB_INT(r->mismatch)};
#define FIG_SQL                                                                                    \
	"end_ms = ?, stop_reason = ?, stop_reason_text = LEFT(?, 128), meter_start = ?, meter_stop = ?, " \
	"sharp_kwh = ?, sharp_amount = ?, peak_kwh = ?, peak_amount = ?, flat_kwh = ?, flat_amount = ?, " \
	"valley_kwh = ?, valley_amount = ?, total_kwh = ?, elec_amount = ?, service_amount = ?, "    \
	"total_amount = ?, pile_amount = ?, bill = ?, amount_mismatch = ?"
	if (r->session_id > 0) {
		if (state && strcmp(state, "pending") == 0) {
			/* the trigger allows finished only from starting onwards */
			evcs_db_param_t sp[] = {EVCS_DB_INT(r->session_id)};
			evcs_db_txn_add(t, tenant,
					"UPDATE charging_sessions SET state = 'starting' WHERE tenant_id = ? AND id = ?",
					sp, 1, 0);
			r->first = 1;
		}
		evcs_db_param_t p[22 + 3];
		p[0] = EVCS_DB_INT(start_ms);
		memcpy(&p[1], fig, sizeof fig);
		p[21] = vin && *vin ? EVCS_DB_STR(vin) : EVCS_DB_NULL;
		p[22] = pcard && is_hex_upper(pcard, 16) && strspn(pcard, "0") != 16 ? EVCS_DB_STR(pcard)
										    : EVCS_DB_NULL;
		p[23] = EVCS_DB_INT(r->session_id);
		evcs_db_txn_add(t, tenant,
				"UPDATE charging_sessions SET state = 'finished', start_ms = COALESCE(start_ms, ?), " FIG_SQL
				", vin = COALESCE(vin, LEFT(?, 17)), physical_card = COALESCE(physical_card, ?) "
				"WHERE tenant_id = ? AND id = ?",
				p, 24, EVCS_DB_REQUIRE_ROW);
	} else {
		evcs_db_param_t p[10 + 20 + 2];
		size_t n = 0;
		p[n++] = station > 0 ? EVCS_DB_INT(station) : EVCS_DB_NULL;
		p[n++] = EVCS_DB_INT(r->o.pile_id);
		p[n++] = EVCS_DB_INT(r->o.pile_id);
		p[n++] = EVCS_DB_INT(r->gun);
		p[n++] = EVCS_DB_INT(r->gun);
		p[n++] = EVCS_DB_STR(r->trade);
		p[n++] = EVCS_DB_STR(start_mode_of_flag(opt_int(rec, "trade_flag", 1)));
		p[n++] = pcard && is_hex_upper(pcard, 16) && strspn(pcard, "0") != 16 ? EVCS_DB_STR(pcard)
										      : EVCS_DB_NULL;
		p[n++] = vin && *vin ? EVCS_DB_STR(vin) : EVCS_DB_NULL;
		p[n++] = tp.id > 0 ? EVCS_DB_INT(tp.id) : EVCS_DB_NULL;
		p[n++] = EVCS_DB_INT(start_ms ? start_ms : now_ms());
		p[n++] = EVCS_DB_INT(start_ms);
		memcpy(&p[n], fig, sizeof fig);
		n += 20;
		evcs_db_txn_add(t, tenant,
				"INSERT INTO charging_sessions SET tenant_id = ?, station_id = ?, pile_id = ?, "
				"connector_id = (SELECT c.id FROM connectors c WHERE c.tenant_id = ? AND c.pile_id = ? "
				"AND c.gun_no = ?), gun_no = ?, trade_no = ?, state = 'finished', start_mode = ?, "
				"physical_card = ?, vin = LEFT(?, 17), tariff_id = ?, requested_ms = ?, start_ms = ?, " FIG_SQL,
				p, n, 0);
	}
	const char *raw = opt_str(r->o.args, "raw_hex");
	const char *peer = opt_str(r->o.args, "peer");
	evcs_db_param_t rp[4 + REC_NINT + 8];
	size_t n = 0;
	rp[n++] = EVCS_DB_INT(r->o.pile_id);
	rp[n++] = r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_REFID(0);
	rp[n++] = EVCS_DB_STR(r->trade);
	rp[n++] = EVCS_DB_INT(r->gun);
	rp[n++] = start_ms ? EVCS_DB_INT(start_ms) : EVCS_DB_NULL;
	rp[n++] = end_ms ? EVCS_DB_INT(end_ms) : EVCS_DB_NULL;
	for (int i = 0; i < 21; i++)
		rp[n++] = EVCS_DB_INT(opt_int(rec, rec_int_fields[i], 0));
	rp[n++] = EVCS_DB_STR(vin ? vin : "");
	rp[n++] = EVCS_DB_INT(opt_int(rec, "trade_flag", 0));
	int64_t tt = opt_int(rec, "trade_time_ms", 0);
	rp[n++] = tt ? EVCS_DB_INT(tt) : EVCS_DB_NULL;
	rp[n++] = EVCS_DB_INT(stop_reason);
	rp[n++] = EVCS_DB_STR(pcard && is_hex_upper(pcard, 16) ? pcard : "0000000000000000");
	rp[n++] = EVCS_DB_STR(raw ? raw : "");
	rp[n++] = EVCS_DB_STR(peer ? peer : "");
	/* when an earlier statement updated a pending session first, REFID(0) is never used */
	evcs_db_txn_add(t, tenant,
			"INSERT INTO transaction_records SET tenant_id = ?, pile_id = ?, session_id = ?, trade_no = ?, "
			"gun_no = ?, start_ms = ?, end_ms = ?, sharp_price = ?, sharp_kwh = ?, sharp_loss_kwh = ?, "
			"sharp_amount = ?, peak_price = ?, peak_kwh = ?, peak_loss_kwh = ?, peak_amount = ?, "
			"flat_price = ?, flat_kwh = ?, flat_loss_kwh = ?, flat_amount = ?, valley_price = ?, "
			"valley_kwh = ?, valley_loss_kwh = ?, valley_amount = ?, meter_start_kwh = ?, "
			"meter_stop_kwh = ?, total_kwh = ?, total_loss_kwh = ?, total_amount = ?, vin = LEFT(?, 17), "
			"trade_flag = ?, trade_time_ms = ?, stop_reason = ?, physical_card = ?, raw_hex = ?, "
			"peer = LEFT(?, 64)",
			rp, n, 0);
	if (r->mismatch) {
		char msg[160];
		snprintf(msg, sizeof msg, "bill differs from the pile: platform %lld, pile %lld (0.00001 yuan)",
			 (long long)total, (long long)r->pile_amount);
		evcs_db_param_t ap[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_INT(r->gun & 0xFF),
					r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_REFID(0),
					EVCS_DB_STR(r->alarm_code), EVCS_DB_STR(msg),
					EVCS_DB_STR(evcs_store_caller(r->o.call))};
		evcs_db_txn_add(t, tenant,
				"INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
				"code = ?, severity = 'warning', message = ?, source = LEFT(?, 32)",
				ap, 6, 0);
	}
	evcs_db_param_t cp[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_INT(r->gun),
				r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_REFID(0)};
	evcs_db_txn_add(t, tenant,
			"UPDATE connectors SET current_session_id = NULL WHERE tenant_id = ? AND pile_id = ? "
			"AND gun_no = ? AND current_session_id = ?",
			cp, 3, 0);
	free(bill_text);
	r->o.attempt++;
	int rc = evcs_db_txn_submit(t, 0, rec_write_done, r);
	if (rc != EVCS_OK) {
		fail_submit(r->o.call, rc, "txn.record");
		op_free(&r->o);
	}
}

static void rec_read(struct rec_op *r)
{
	evcs_db_txn_t *t = evcs_db_txn_new(r->o.core->db);
	evcs_db_param_t p[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_STR(r->trade)};
	evcs_db_txn_add(t, r->o.tenant,
			"SELECT r.id, r.session_id, r.raw_hex, r.sharp_price, r.sharp_kwh, r.sharp_loss_kwh, "
			"r.sharp_amount, r.peak_price, r.peak_kwh, r.peak_loss_kwh, r.peak_amount, r.flat_price, "
			"r.flat_kwh, r.flat_loss_kwh, r.flat_amount, r.valley_price, r.valley_kwh, "
			"r.valley_loss_kwh, r.valley_amount, r.meter_start_kwh, r.meter_stop_kwh, r.total_kwh, "
			"r.total_loss_kwh, r.total_amount, r.trade_flag, r.stop_reason "
			"FROM transaction_records r WHERE r.tenant_id = ? AND r.pile_id = ? AND r.trade_no = ?",
			p, 2, 0);
	evcs_db_txn_add(t, r->o.tenant,
			"SELECT s.id, s.state, s.bill, " TARIFF_COLS " FROM charging_sessions s LEFT JOIN tariffs t "
			"ON t.tenant_id = s.tenant_id AND t.id = s.tariff_id "
			"WHERE s.tenant_id = ? AND s.pile_id = ? AND s.trade_no = ?",
			p, 2, 0);
	evcs_db_txn_add(t, r->o.tenant,
			"SELECT p.station_id, p.serial, " TARIFF_COLS " FROM piles p LEFT JOIN tariffs t "
			"ON t.tenant_id = p.tenant_id AND t.id = p.tariff_id WHERE p.tenant_id = ? AND p.id = ?",
			p, 1, 0);
	int rc = evcs_db_txn_submit(t, EVCS_DB_IDEMPOTENT, rec_read_done, r);
	if (rc != EVCS_OK) {
		fail_submit(r->o.call, rc, "txn.record");
		op_free(&r->o);
	}
}

static void op_txn_record(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, gun;
	const char *trade;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "gun", gun);
	REQ_STR(args, "trade_no", trade);
	json_t *rec = json_object_get(args, "record");
	if (!json_is_object(rec)) {
		evcs_store_fail(call, EVCS_EINVAL, "record", "object expected");
		return;
	}
	if (!valid_trade(trade)) {
		evcs_store_fail(call, EVCS_EINVAL, "trade_no", "32 hex digits expected");
		return;
	}
	if (gun < 1 || gun > 99) {
		evcs_store_fail(call, EVCS_EINVAL, "gun", "1..99 expected");
		return;
	}
	for (int i = 0; rec_int_fields[i]; i++) {
		int64_t v;
		if (get_int(rec, rec_int_fields[i], &v) < 0 || v < 0) {
			char f[48];
			snprintf(f, sizeof f, "record.%s", rec_int_fields[i]);
			evcs_store_fail(call, EVCS_EINVAL, f, "non-negative integer expected");
			return;
		}
	}
	const char *raw = opt_str(args, "raw_hex");
	if (raw && strlen(raw) > 1024) {
		evcs_store_fail(call, EVCS_EINVAL, "raw_hex", "at most 1024 characters");
		return;
	}
	struct rec_op *r = calloc(1, sizeof *r);
	if (!r) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "out of memory");
		return;
	}
	r->o.call = call;
	r->o.core = evcs_store_core(s);
	r->o.args = json_incref(args);
	r->o.tenant = tenant;
	r->o.pile_id = pile_id;
	snprintf(r->o.name, sizeof r->o.name, "txn.record");
	r->rec = rec;
	r->gun = gun;
	r->trade = trade; /* borrowed from args, which r holds */
	rec_read(r);
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
	static const struct {
		const char *name;
		evcs_store_op_fn fn;
	} ops[] = {
	    {"pile.login", op_pile_login},
	    {"pile.offline", op_pile_offline},
	    {"pile.seen", op_pile_seen},
	    {"gun.status", op_gun_status},
	    {"tariff.for_pile", op_tariff_for_pile},
	    {"session.create", op_session_create},
	    {"session.authorize", op_session_authorize},
	    {"session.started", op_session_started},
	    {"session.stop_requested", op_session_stop_requested},
	    {"session.stopped", op_session_stopped},
	    {"meter.sample", op_meter_sample},
	    {"txn.record", op_txn_record},
	    {"event.store", op_event_store},
	    {"alarm.raise", op_alarm_raise},
	    {"alarm.clear", op_alarm_clear},
	};
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
		if (evcs_store_register(s, ops[i].name, ops[i].fn) != EVCS_OK)
			evcs_err(COMP, "cannot register storage operation %s", ops[i].name);
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
