/*
 * api_sim.c: simulated piles through the operator API (the charger simulator plugin ykcsim.so,
 * plugins/ykc/simplugin.c, which claims the pseudo pile "@simulator" with tenant 0).
 *
 *   POST   /api/v1/stations/{station_id}/simulated-piles  {"guns":1..4, "protocol":"1.5"|"1.6"}
 *          registers a pile row on the station for the caller's tenant (quota as for
 *          POST /piles) with a generated serial "99" + 12 digits and its connectors, then asks
 *          the simulator to run it ("add_pile"); 201 {serial, pile_id, simulator}. When the
 *          simulator refuses or is gone the row is deleted again, so no unreachable pile stays.
 *   GET    /api/v1/simulated-piles            the simulator's "list" for the caller's tenant
 *   DELETE /api/v1/simulated-piles/{serial}   stops the simulation ("remove_pile"); the pile row
 *          and its history stay (DELETE /api/v1/piles/{id} removes the row)
 * The simulator keeps each pile's tenant and answers list/remove only for the requester's tenant,
 * so another tenant's simulated pile answers 404 like a missing one. Without the plugin every
 * route answers 409 "simulator plugin not loaded".
 * Every handler answers exactly once (api.h). Loop thread only.
 */
#include "api.h"
#include "log.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_PILE "@simulator"
#define SIM_TIMEOUT_MS 10000 /* the simulator answers at once; this only bounds a stuck bus */
#define SERIAL_TRIES 5

struct simop {
	int64_t station_id, pile_id;
	int guns, tries;
	char protocol[4];
	char serial[16];
	json_t *answer; /* add_pile's answer, kept for the reply */
	int fail_status; /* bus status that made us delete the row again */
	char *fail_detail;
};

static void simop_free(void *p)
{
	struct simop *o = p;
	if (o) {
		json_decref(o->answer);
		free(o->fail_detail);
	}
	free(o);
}

static int simulator_loaded(api_ctx_t *c)
{
	if (evcs_bus_pile_owner(c->core->bus, SIM_PILE, NULL))
		return 1;
	api_error(c, 409, "simulator_unavailable", NULL,
		  "simulator plugin not loaded (add a [plugin ykcsim] section to the configuration)");
	return 0;
}

/* Send a command to the simulator with the ctx's tenant; done gets the ctx. */
static void sim_send(api_ctx_t *c, const char *name, json_t *args, evcs_cmd_done done)
{
	char *a = args ? json_dumps(args, JSON_COMPACT) : NULL;
	json_decref(args);
	evcs_command_t cmd = {.size = sizeof cmd, .tenant_id = c->tenant, .pile = SIM_PILE,
			      .name = name, .args_json = a};
	/* the simulator answers inside the send call (done runs, the ctx may be freed): mark
	 * first, touch c afterwards only when the send itself failed (done never runs then) */
	c->waiting_cmd = 1;
	int r = evcs_bus_command_send(c->core->bus, &cmd, SIM_TIMEOUT_MS, done, c, "api");
	free(a);
	if (r != EVCS_OK) {
		c->waiting_cmd = 0;
		api_error(c, 503, "unavailable", NULL, "cannot reach the simulator");
	}
}

static json_t *parse_answer(const char *result_json)
{
	json_t *res = result_json ? json_loads(result_json, JSON_DECODE_ANY, NULL) : NULL;
	if (!res && result_json)
		res = json_string(result_json);
	return res;
}

/* Map a failed simulator answer. */
static void sim_error(api_ctx_t *c, int status, const char *detail)
{
	const char *d = detail ? detail : "";
	switch (status) {
	case EVCS_EOFFLINE:
		api_error(c, 409, "simulator_unavailable", NULL, "simulator plugin not loaded");
		break;
	case EVCS_EBUSY:
		api_error(c, 409, "simulator_full", NULL,
			  "the simulator runs its maximum number of piles (max_piles) %s", d);
		break;
	case EVCS_EEXIST:
		api_error(c, 409, "conflict", "serial", "this serial is already simulated %s", d);
		break;
	case EVCS_ENOENT:
		api_error(c, 404, "not_found", NULL, "no such simulated pile");
		break;
	case EVCS_ENOTSUP:
	case EVCS_EINVAL:
		api_error(c, 400, "invalid", "protocol", "the simulator refused: %s", d);
		break;
	case EVCS_VETO:
		api_error(c, 403, "vetoed", NULL, "the command was vetoed %s", d);
		break;
	case EVCS_ETIMEDOUT:
		api_error(c, 504, "timeout", NULL, "the simulator did not answer in time");
		break;
	default:
		api_error(c, 502, "simulator_error", NULL, "simulator: %s %s", evcs_status_str(status), d);
	}
}

/* ---- POST /api/v1/stations/{station_id}/simulated-piles ----------------------------------- */
static void create_txn(api_ctx_t *c);

static void undo_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		    void *ud)
{
	api_ctx_t *c = ud;
	if (api_ctx_gone(c))
		return;
	struct simop *o = c->op;
	if (status != EVCS_OK)
		evcs_log(EVCS_LOG_WARNING, "api", c->tenant, o->serial,
			 "could not delete the pile row of a simulated pile that did not start: %s",
			 errmsg ? errmsg : evcs_status_str(status));
	sim_error(c, o->fail_status, o->fail_detail);
}

static void add_done(int status, const char *result_json, void *ud)
{
	api_ctx_t *c = ud;
	c->waiting_cmd = 0;
	if (api_ctx_gone(c))
		return;
	struct simop *o = c->op;
	json_t *res = parse_answer(result_json);
	if (status == EVCS_OK) {
		json_t *r = json_pack("{s:s, s:I, s:I, s:o}", "serial", o->serial, "pile_id",
				      (json_int_t)o->pile_id, "station_id", (json_int_t)o->station_id,
				      "simulator", res ? res : json_null());
		api_reply_json(c, 201, r);
		return;
	}
	o->fail_status = status;
	o->fail_detail = res ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(res);
	/* nothing will ever log in as this pile: take the row back (connectors cascade) */
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant, "DELETE FROM piles WHERE tenant_id = ? AND id = ?",
				(evcs_db_param_t[]){EVCS_DB_INT(o->pile_id)}, 1, 0);
		json_t *d = json_pack("{s:s, s:s}", "serial", o->serial, "reason",
				      evcs_status_str(status));
		api_txn_audit(c, t, "pile.simulate_failed", "pile", EVCS_DB_INT(o->pile_id), d);
		json_decref(d);
	}
	api_txn_submit(c, t, undo_cb);
}

static void created_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	api_ctx_t *c = ud;
	if (api_ctx_gone(c))
		return;
	struct simop *o = c->op;
	if (status == EVCS_EEXIST && o->tries < SERIAL_TRIES) {
		create_txn(c); /* the random serial was taken: draw another */
		return;
	}
	if (status == EVCS_ENOENT) {
		api_error(c, 409, "quota_exceeded", NULL, "the tenant's pile quota is used up");
		return;
	}
	if (status != EVCS_OK) {
		api_db_error(c, status, errmsg, "fk_piles_station=station_id");
		return;
	}
	if (evcs_db_cell_i64(&res[nres - 1], 0, 0, &o->pile_id) != 0) {
		api_error(c, 500, "internal", NULL, "the new pile row is missing");
		return;
	}
	json_t *args = json_pack("{s:s, s:i, s:s}", "serial", o->serial, "guns", o->guns, "protocol",
				 o->protocol);
	sim_send(c, "add_pile", args, add_done);
}

static void create_txn(api_ctx_t *c)
{
	struct simop *o = c->op;
	unsigned char rb[8];
	if (RAND_bytes(rb, sizeof rb) != 1) {
		api_error(c, 503, "unavailable", NULL, "no random numbers");
		return;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < sizeof rb; i++)
		v = v << 8 | rb[i];
	/* "99" + 12 digits: the range reserved for simulated piles (README, SIMULATOR.md) */
	snprintf(o->serial, sizeof o->serial, "99%012llu",
		 (unsigned long long)(v % 1000000000000ull));
	o->tries++;
	char name[40];
	snprintf(name, sizeof name, "simulated %s", o->serial + 8);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		/* quota, serialised on the tenant row; ENOENT from here means "quota used up" */
		evcs_db_txn_add(t, c->tenant,
				"SELECT te.id FROM tenants te WHERE te.id = ? AND (te.max_piles = 0 OR "
				"te.max_piles > (SELECT COUNT(*) FROM piles p WHERE p.tenant_id = ?)) "
				"FOR UPDATE",
				(evcs_db_param_t[]){EVCS_DB_INT(c->tenant)}, 1, EVCS_DB_REQUIRE_ROW);
		evcs_db_txn_add(t, c->tenant,
				"INSERT INTO piles SET tenant_id = ?, station_id = ?, serial = ?, name = ?, "
				"protocol = 'ykc', protocol_version = ?, vendor = 'evcs-sim', "
				"model = 'simulated', gun_count = ?",
				(evcs_db_param_t[]){EVCS_DB_INT(o->station_id), EVCS_DB_STR(o->serial),
						    EVCS_DB_STR(name),
						    EVCS_DB_INT(strcmp(o->protocol, "1.5") ? 16 : 15),
						    EVCS_DB_INT(o->guns)},
				5, 0);
		for (int g = 1; g <= o->guns; g++)
			evcs_db_txn_add(t, c->tenant,
					"INSERT INTO connectors SET tenant_id = ?, pile_id = ?, gun_no = ?",
					(evcs_db_param_t[]){EVCS_DB_REFID(1), EVCS_DB_INT(g)}, 2, 0);
		json_t *d = json_pack("{s:s, s:I, s:i, s:s}", "serial", o->serial, "station_id",
				      (json_int_t)o->station_id, "guns", o->guns, "protocol", o->protocol);
		api_txn_audit(c, t, "pile.simulate", "pile", EVCS_DB_REFID(1), d);
		json_decref(d);
		evcs_db_txn_add(t, c->tenant, "SELECT id FROM piles WHERE tenant_id = ? AND id = ?",
				(evcs_db_param_t[]){EVCS_DB_REFID(1)}, 1, 0);
	}
	api_txn_submit(c, t, created_cb);
}

static void station_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	if (res[0].nrows != 1) {
		api_error(c, 404, "not_found", NULL, "no such station");
		return;
	}
	create_txn(c);
}

void api_op_sim_create(api_ctx_t *c)
{
	int64_t station = api_param_id(c, "station_id");
	if (!station)
		return;
	const char *k;
	json_t *v;
	json_object_foreach(c->body, k, v)
	{
		if (strcmp(k, "guns") && strcmp(k, "protocol")) {
			api_error(c, 400, "unknown_field", k, "unknown field %s", k);
			return;
		}
	}
	json_t *g = json_object_get(c->body, "guns");
	json_t *p = json_object_get(c->body, "protocol");
	if (g && (!json_is_integer(g) || json_integer_value(g) < 1 || json_integer_value(g) > 4)) {
		api_error(c, 400, "invalid", "guns", "guns must be an integer 1..4");
		return;
	}
	if (p && (!json_is_string(p) || (strcmp(json_string_value(p), "1.5") != 0 &&
					  strcmp(json_string_value(p), "1.6") != 0))) {
		api_error(c, 400, "invalid", "protocol", "protocol must be \"1.5\" or \"1.6\"");
		return;
	}
	/* before any row is written: without the plugin nothing could log in as the pile */
	if (!simulator_loaded(c))
		return;
	struct simop *o = calloc(1, sizeof *o);
	if (!o) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	o->station_id = station;
	o->guns = g ? (int)json_integer_value(g) : 1;
	snprintf(o->protocol, sizeof o->protocol, "%s", p ? json_string_value(p) : "1.6");
	c->op = o;
	c->op_free = simop_free;
	api_query(c, 0, "SELECT id FROM stations WHERE tenant_id = ? AND id = ?",
		  (evcs_db_param_t[]){EVCS_DB_INT(station)}, 1, station_cb);
}

/* ---- GET /api/v1/simulated-piles ------------------------------------------------------------ */
static void list_done(int status, const char *result_json, void *ud)
{
	api_ctx_t *c = ud;
	c->waiting_cmd = 0;
	if (api_ctx_gone(c))
		return;
	json_t *res = parse_answer(result_json);
	if (status != EVCS_OK) {
		char *d = res ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_decref(res);
		sim_error(c, status, d);
		free(d);
		return;
	}
	/* the simulator filtered by the requester's tenant already; keep only the documented shape */
	json_t *piles = json_object_get(res, "piles");
	json_t *o = json_pack("{s:O}", "piles", json_is_array(piles) ? piles : json_array());
	if (json_is_integer(json_object_get(res, "max_piles")))
		json_object_set(o, "max_piles", json_object_get(res, "max_piles"));
	json_decref(res);
	api_reply_json(c, 200, o);
}

void api_op_sim_list(api_ctx_t *c)
{
	if (!simulator_loaded(c))
		return;
	sim_send(c, "list", NULL, list_done);
}

/* ---- DELETE /api/v1/simulated-piles/{serial} ---------------------------------------------- */
static void removed_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	api_ctx_t *c = ud;
	if (api_ctx_gone(c))
		return;
	if (status != EVCS_OK) /* the simulation did stop; only the audit row is missing */
		evcs_log(EVCS_LOG_WARNING, "api", c->tenant, NULL,
			 "audit of a simulated pile removal failed: %s",
			 errmsg ? errmsg : evcs_status_str(status));
	api_reply_json(c, 204, NULL);
}

static void remove_done(int status, const char *result_json, void *ud)
{
	api_ctx_t *c = ud;
	c->waiting_cmd = 0;
	if (api_ctx_gone(c))
		return;
	if (status != EVCS_OK) {
		sim_error(c, status, NULL);
		return;
	}
	struct simop *o = c->op;
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t)
		api_txn_audit(c, t, "pile.simulate_stop", "pile", EVCS_DB_STR(o->serial), NULL);
	api_txn_submit(c, t, removed_cb);
}

void api_op_sim_delete(api_ctx_t *c)
{
	const char *serial = api_param(c, "serial");
	if (!serial || strlen(serial) != 14 || strspn(serial, "0123456789") != 14) {
		api_error(c, 404, "not_found", NULL, "no such simulated pile");
		return;
	}
	if (!simulator_loaded(c))
		return;
	struct simop *o = calloc(1, sizeof *o);
	if (!o) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	snprintf(o->serial, sizeof o->serial, "%s", serial);
	c->op = o;
	c->op_free = simop_free;
	sim_send(c, "remove_pile", json_pack("{s:s}", "serial", serial), remove_done);
}
