/*
 * store_piles.c: storage operations about piles and their presence (store_ops.h has the shared
 * contract): pile.login, tariff.for_pile, pile.offline, gun.status, pile.seen, event.store.
 * Pile identities are whatever the protocol uses (1..EVCS_ID_MAX bytes); the login lookup by
 * identity and the unclaimed-pile table are the two installation-wide statements.
 */
#include "store_ops.h"

/* ---- pile.login ------------------------------------------------------------------------ */

struct login_op {
	struct op o;
	int64_t station_id;
	evcs_tariff_pick_t assigned;
	char serial[EVCS_ID_MAX + 1];
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
	evcs_tariff_pick_t active = {0}, pick;
	const evcs_db_result_t *last = &res[nres - 1];
	if (last->nrows > 0)
		evcs_tariff_from_row(last, 0, 0, &active);
	evcs_tariff_resolve(l->o.core, l->o.tenant, l->serial, &l->assigned, &active, &pick);
	json_t *r = json_pack("{s:b, s:I, s:I}", "accepted", 1, "tenant_id", (json_int_t)l->o.tenant,
			      "pile_id", (json_int_t)l->o.pile_id);
	json_object_set_new(r, "station_id",
			    l->station_id > 0 ? json_integer(l->station_id) : json_null());
	json_object_set_new(r, "tariff", pick.found ? evcs_tariff_json(&pick) : json_null());
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
	evcs_tariff_from_row(&res[0], 0, 6, &l->assigned);
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
	if (!valid_identity(serial)) {
		evcs_store_fail(call, EVCS_EINVAL, "serial", "1..64 bytes expected");
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
	evcs_tariff_pick_t assigned = {0}, active = {0}, pick;
	evcs_tariff_from_row(&res[0], 0, 1, &assigned);
	if (res[1].nrows)
		evcs_tariff_from_row(&res[1], 0, 0, &active);
	const char *serial = evcs_db_cell(&res[0], 0, 0);
	evcs_tariff_resolve(o->core, o->tenant, serial, &assigned, &active, &pick);
	json_t *r = json_pack("{s:b}", "found", pick.found);
	json_object_set_new(r, "tariff", pick.found ? evcs_tariff_json(&pick) : json_null());
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

static void op_pile_seen(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	if (store_ensure_batches(evcs_store_core(s)) < 0) {
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

static void op_event_store(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant;
	const char *name;
	REQ_INT(args, "tenant_id", tenant);
	REQ_STR(args, "name", name);
	if (store_ensure_batches(evcs_store_core(s)) < 0) {
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


void store_register_piles(evcs_store_t *s)
{
	static const struct {
		const char *name;
		evcs_store_op_fn fn;
	} ops[] = {
	    {"pile.login", op_pile_login},
	    {"pile.offline", op_pile_offline},
	    {"pile.seen", op_pile_seen},
	    {"gun.status", op_gun_status},
	    {"tariff.for_pile", op_tariff_for_pile},
	    {"event.store", op_event_store},
	};
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
		if (evcs_store_register(s, ops[i].name, ops[i].fn) != EVCS_OK)
			evcs_err(COMP, "cannot register storage operation %s", ops[i].name);
}
