/*
 * tests/test_cec_e2e.c: the CEC plugin end to end, against a real in-process evcsd (core started
 * with evcs_core_start, [database] from the EVCS_DB_* environment, cec.so loaded from its .libs)
 * and the test partner platform of tests/cec_partner.c (server for our pushes, client for our
 * routes).
 *
 * The pile: the YKC plugin (plugins/ykc/plugin.c) and its scripted test pile were not available
 * when this was written, so the test itself claims the pile on the core's bus (as the YKC
 * plugin would), answers "start"/"stop" and publishes the events the YKC plugin publishes
 * (GUN_STATUS, SESSION_STARTED, METER_SAMPLE, SESSION_STOPPED, TRANSACTION_CLOSED), writing the
 * finished session's figures with SQL as the YKC store ops would.
 *
 * Threads: the core's loop runs in a background thread; anything touching the core (bus, pile
 * claim) is run on it through run_on_loop(). Needs tests/with-mariadb.sh (fails clearly without).
 */
#include "cec_partner.h"
#include "core.h"
#include "db.h"
#include "store.h"
#include "testdb.h"
#include "testloop.h"
#include "testutil.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int evcs_http_port(evcs_http_t *h);

#define PARTNER_ID "PTNR00001"
#define OUR_ID "MA1EVCS01"
#define PSECRET "partner-secret-1"
#define OSECRET "evcs-secret-0001"

static evcs_db_config_t dbcfg;
static int env_ok;
static char conf_path[256], partner_path[256];
static evcs_core_t core;
static pthread_t loop_thr;
static int core_running;
static cec_psim_t *psim;
static cec_client_t cl;
static char base_url[128];
static char serial[15];
static int64_t tenant, st_a, st_hidden, pile_id, conn1, conn2, tariff;
static int64_t extra_st[2];
static char cid1[20], cid2[20];

/* ---- helpers ---------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sql_exec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t sql_exec(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int64_t v = testdb_vexec(&dbcfg, 0, fmt, ap);
	va_end(ap);
	return v;
}

static void run_on_loop(void (*fn)(void *), void *arg) { test_run_on_loop(core.base, fn, arg); }

/* ---- the pile (what the YKC plugin does on the bus) ---- */

static pthread_mutex_t pile_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_start_trade[40], last_start_seq[40], last_cmd[16];
static int64_t last_start_partner;
static int starts, stops;

static int pile_cmd(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud)
{
	json_t *a = json_loads(c->args_json ? c->args_json : "{}", 0, NULL);
	pthread_mutex_lock(&pile_mu);
	snprintf(last_cmd, sizeof last_cmd, "%s", c->name);
	if (!strcmp(c->name, "start")) {
		snprintf(last_start_trade, sizeof last_start_trade, "%s", json_string_value(json_object_get(a, "trade_no")) ?: "");
		snprintf(last_start_seq, sizeof last_start_seq, "%s", json_string_value(json_object_get(a, "partner_seq")) ?: "");
		last_start_partner = json_integer_value(json_object_get(a, "partner_id"));
		starts++;
	} else if (!strcmp(c->name, "stop"))
		stops++;
	pthread_mutex_unlock(&pile_mu);
	json_decref(a);
	if (strcmp(c->name, "start") && strcmp(c->name, "stop"))
		return EVCS_ENOTSUP;
	evcs_bus_command_reply(cmd, EVCS_OK, "{\"result\":0}");
	return EVCS_OK;
}

static void claim_pile(void *arg) { evcs_bus_pile_claim(core.bus, "ykc", tenant, serial, pile_cmd, NULL); }

struct pub {
	uint32_t type;
	int gun;
	evcs_field_t f[8];
	size_t n;
	int64_t ts_ms;
};

static void publish_cb(void *arg)
{
	struct pub *p = arg;
	evcs_event_t ev = {.size = sizeof ev, .type = p->type, .tenant_id = tenant, .pile = serial, .gun = p->gun,
			   .ts_ms = p->ts_ms ? p->ts_ms : now_ms(), .fields = p->f, .nfields = p->n};
	evcs_bus_publish(core.bus, &ev, "ykc");
}

static int64_t ts_seq;
/* Distinct, increasing event times (idempotency keys include them). */
static int64_t next_ts(void)
{
	int64_t t = now_ms();
	if (t <= ts_seq)
		t = ts_seq + 1;
	return ts_seq = t;
}

static void gun_status(int gun, int status, int plugged)
{
	struct pub p = {EVCS_EV_GUN_STATUS, gun, {EVCS_FI("status", status), EVCS_FI("prev_status", 0), EVCS_FB("plugged", plugged)}, 3, next_ts()};
	run_on_loop(publish_cb, &p);
}

/* ---- waiting ---- */

static int wait_count(const char *iface, size_t n, int ms)
{
	for (int i = 0; i < ms / 20; i++) {
		if (cec_psim_count(psim, iface) >= n)
			return 1;
		usleep(20000);
	}
	return cec_psim_count(psim, iface) >= n;
}

/* The i-th recorded push of iface (new reference) or NULL. */
static json_t *nth_msg(const char *iface, size_t idx)
{
	json_t *all = cec_psim_msgs(psim), *m, *res = NULL;
	size_t i, k = 0;
	json_array_foreach(all, i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "iface")), iface))
			continue;
		if (k++ == idx) {
			res = json_incref(json_object_get(m, "data"));
			break;
		}
	}
	json_decref(all);
	return res;
}

static int64_t jint(const json_t *o, const char *k) { return json_integer_value(evcs_cec_jget(o, k)); }
static const char *jstr(const json_t *o, const char *k) { return json_string_value(evcs_cec_jget(o, k)) ?: ""; }

/* A decimal member rendered exactly, compared by its units. */
static int64_t jdec(const json_t *o, const char *k, unsigned scale)
{
	int64_t v = -999999;
	evcs_cec_json_get_dec(evcs_cec_jget(o, k), scale, &v);
	return v;
}

/* ---- core lifecycle ---- */

static void *loop_main(void *arg)
{
	event_base_dispatch(core.base);
	return NULL;
}

static int core_up(void)
{
	char err[512];
	memset(&core, 0, sizeof core);
	if (evcs_core_start(&core, conf_path, err, sizeof err) < 0) {
		fprintf(stderr, "core start: %s\n", err);
		return -1;
	}
	pthread_create(&loop_thr, NULL, loop_main, NULL);
	core_running = 1;
	snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d/evcs/v1/", evcs_http_port(core.http));
	cl.base = base_url;
	/* Ready when query_token stops answering Ret -1 (busy, starting). */
	for (int i = 0; i < 250; i++) {
		if (cec_client_login(&cl) == 0)
			break;
		usleep(20000);
	}
	run_on_loop(claim_pile, NULL);
	return cl.token[0] ? 0 : -1;
}

static void stop_loop(void *arg) { event_base_loopbreak(core.base); }

static void core_down(void)
{
	if (!core_running)
		return;
	run_on_loop(stop_loop, NULL);
	pthread_join(loop_thr, NULL);
	evcs_core_free(&core);
	core_running = 0;
}

static int suite_init(void)
{
	const char *sock = getenv("EVCS_DB_SOCKET"), *port = getenv("EVCS_DB_PORT");
	const char *user = getenv("EVCS_DB_USER"), *name = getenv("EVCS_DB_NAME");
	if (!user || !name || ((!sock || !*sock) && (!port || !*port))) {
		fprintf(stderr, "\n*** test_cec_e2e needs a MariaDB: EVCS_DB_SOCKET or EVCS_DB_PORT, EVCS_DB_USER, "
				"EVCS_DB_PASSWORD and EVCS_DB_NAME are not set.\n"
				"*** Run it as: tests/with-mariadb.sh ./tests/test_cec_e2e\n");
		return 1;
	}
	evthread_use_pthreads();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	dbcfg.socket = sock;
	dbcfg.host = getenv("EVCS_DB_HOST") ? getenv("EVCS_DB_HOST") : "127.0.0.1";
	dbcfg.port = port ? (unsigned)atoi(port) : 0;
	dbcfg.user = user;
	dbcfg.password = getenv("EVCS_DB_PASSWORD");
	dbcfg.name = name;
	dbcfg.connect_timeout_s = 3;
	int pid = (int)getpid();
	/* The configuration first: `evcsd --migrate` reads it to apply the core's migrations and
	 * then the cec plugin's own (its tables). */
	snprintf(partner_path, sizeof partner_path, "/tmp/evcs-cec-partners-%d.json", pid);
	snprintf(conf_path, sizeof conf_path, "/tmp/evcs-cec-e2e-%d.conf", pid);
	FILE *f = fopen(conf_path, "w");
	fprintf(f,
		"[core]\nlog_level = %s\nplugin_dir = %s\nschema_dir = " TEST_SCHEMA_DIR "\n[http]\nlisten = 127.0.0.1:0\n"
		"[database]\nuser = %s\npassword = %s\nname = %s\n%s%s%s\nport = %s\nconnect_timeout = 3\n"
		"[plugin cec]\npartner_file = %s\ncharge_status_interval = 0\nretry_base_ms = 100\n"
		"retry_max_ms = 400\nrefresh_interval = 1\ncheck_hour = 0\ncommand_timeout_ms = 3000\n",
		getenv("EVCS_TEST_LOG") ? getenv("EVCS_TEST_LOG") : "err", TEST_CEC_PLUGIN_DIR, user,
		dbcfg.password ? dbcfg.password : "", name, sock && *sock ? "socket = " : "host = ",
		sock && *sock ? sock : dbcfg.host, "", port && *port ? port : "3306", partner_path);
	fclose(f);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "EVCS_SCHEMA_DIR=" TEST_SCHEMA_DIR " " TEST_EVCSD " --migrate -c %s >/dev/null", conf_path);
	if (system(cmd) != 0) {
		fprintf(stderr, "%s failed\n", cmd);
		return 1;
	}
	/* Fixtures: one tenant, three visible stations and a hidden one, one pile with two guns. */
	tenant = sql_exec("INSERT INTO tenants (name) VALUES ('cec-e2e-%d')", pid);
	st_a = sql_exec("INSERT INTO stations (tenant_id, name, address, area_code, lat_e6, lng_e6, service_tel, photos) "
			"VALUES (%lld, '一号站', '浦东新区 1 号', '310115', 31230416, 121473701, '400-000', "
			"'[\"https://x/1.jpg\"]')", (long long)tenant);
	extra_st[0] = sql_exec("INSERT INTO stations (tenant_id, name) VALUES (%lld, 'B')", (long long)tenant);
	extra_st[1] = sql_exec("INSERT INTO stations (tenant_id, name) VALUES (%lld, 'C')", (long long)tenant);
	st_hidden = sql_exec("INSERT INTO stations (tenant_id, name) VALUES (%lld, 'hidden')", (long long)tenant);
	tariff = sql_exec("INSERT INTO tariffs (tenant_id, name, model, sharp_elec_rate, sharp_service_rate, "
			  "peak_elec_rate, peak_service_rate, flat_elec_rate, flat_service_rate, valley_elec_rate, "
			  "valley_service_rate, slots, state) VALUES (%lld, 'std', '%04d', 120000, 80000, 100000, 80000, "
			  "70000, 60000, 30000, 40000, '%s', 'active')",
			  (long long)tenant, 1000 + pid % 9000,
			  "333333333333333322222222000011112222222211112222");
	snprintf(serial, sizeof serial, "3201%010d", pid);
	pile_id = sql_exec("INSERT INTO piles (tenant_id, station_id, serial, rated_power_w, gun_count, tariff_id, vendor) "
			   "VALUES (%lld, %lld, '%s', 120000, 2, %lld, 'ACME')",
			   (long long)tenant, (long long)st_a, serial, (long long)tariff);
	conn1 = sql_exec("INSERT INTO connectors (tenant_id, pile_id, gun_no, rated_power_w, status) VALUES (%lld, %lld, 1, 60000, 2)",
			 (long long)tenant, (long long)pile_id);
	conn2 = sql_exec("INSERT INTO connectors (tenant_id, pile_id, gun_no, rated_power_w, status) VALUES (%lld, %lld, 2, 60000, 2)",
			 (long long)tenant, (long long)pile_id);
	if (tenant <= 0 || st_a <= 0 || pile_id <= 0 || conn2 <= 0 || tariff <= 0)
		return 1;
	snprintf(cid1, sizeof cid1, "%s01", serial);
	snprintf(cid2, sizeof cid2, "%s02", serial);

	cec_psim_cfg_t pc = {.partner_id = PARTNER_ID, .evcs_id = OUR_ID,
			     .evcs_keys = {"UUUUUUUUUUUUUUUU", "VVVVVVVVVVVVVVVV", "user-sig-secret"},
			     .evcs_secret = OSECRET, .token_ttl = 3600};
	psim = cec_psim_start(&pc);
	if (!psim)
		return 1;
	f = fopen(partner_path, "w");
	fprintf(f,
		"{\"partners\":[{\"tenant_id\":%lld,\"name\":\"test partner\",\"operator_id\":\"%s\","
		"\"our_operator_id\":\"%s\",\"base_url\":\"http://127.0.0.1:%d/p/\",\"operator_secret\":\"%s\","
		"\"data_secret\":\"DDDDDDDDDDDDDDDD\",\"data_secret_iv\":\"IIIIIIIIIIIIIIII\",\"sig_secret\":\"sig-secret\","
		"\"user_operator_secret\":\"%s\",\"user_data_secret\":\"UUUUUUUUUUUUUUUU\","
		"\"user_data_secret_iv\":\"VVVVVVVVVVVVVVVV\",\"user_sig_secret\":\"user-sig-secret\","
		"\"stations\":[%lld,%lld,%lld],\"profile\":\"cec2016\",\"profile_flags\":{\"token_ttl\":3}}]}",
		(long long)tenant, PARTNER_ID, OUR_ID, cec_psim_port(psim), PSECRET, OSECRET, (long long)st_a,
		(long long)extra_st[0], (long long)extra_st[1]);
	fclose(f);
	cl.operator_id = PARTNER_ID;
	cl.secret = PSECRET;
	cl.keys = (cec_keys_t){"DDDDDDDDDDDDDDDD", "IIIIIIIIIIIIIIII", "sig-secret"};
	evcs_cec_profile_default(&cl.profile);
	if (core_up() != 0)
		return 1;
	env_ok = 1;
	return 0;
}

static int suite_clean(void)
{
	core_down();
	cec_psim_stop(psim);
	unlink(conf_path);
	unlink(partner_path);
	return 0;
}

/* ---- Ret codes through the real route ------------------------------------------------------- */

static int call_ret(const char *iface, json_t *data)
{
	cec_call_t r;
	cec_client_call(&cl, iface, data, &r);
	int ret = r.http == 200 ? r.ret : -(int)r.http;
	cec_call_clear(&r);
	return ret;
}

static void test_ret_codes(void)
{
	cec_call_t r;
	/* 4003: not JSON, and a missing envelope field */
	cec_client_post(&cl, "query_stations_info", "not json", cl.token, &r);
	CU_ASSERT_EQUAL(r.http, 200);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_POST);
	cec_call_clear(&r);
	cec_client_post(&cl, "query_stations_info",
			"{\"OperatorID\":\"" PARTNER_ID "\",\"Data\":\"AAAA\",\"TimeStamp\":\"20240101120000\",\"Seq\":\"0001\"}",
			cl.token, &r);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_POST);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, "Sig"));
	cec_call_clear(&r);
	/* 4001: a signature that does not match */
	char *env = cec_client_envelope(&cl, "AAAAAAAAAAAAAAAAAAAAAA==", false);
	cec_client_post(&cl, "query_stations_info", env, cl.token, &r);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_SIG);
	CU_ASSERT_TRUE(r.signed_ok); /* the partner is known: even errors are signed */
	cec_call_clear(&r);
	free(env);
	/* 4004: signed correctly, but Data does not decrypt */
	env = cec_client_envelope(&cl, "AAAAAAAAAAAAAAAAAAAAAA==", true);
	cec_client_post(&cl, "query_stations_info", env, cl.token, &r);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_BIZ);
	cec_call_clear(&r);
	free(env);
	/* 4002: no token, a forged token */
	json_t *d = json_pack("{s:i, s:i}", "PageNo", 1, "PageSize", 10);
	char *body;
	{
		char ts[15], seq[5];
		evcs_cec_stamp_next(&cl.stamp, time(NULL), cl.profile.utc_offset_sec, ts, seq);
		body = evcs_cec_request_build(&cl.profile, &cl.keys, cl.operator_id, d, ts, seq, NULL);
	}
	cec_client_post(&cl, "query_stations_info", body, NULL, &r);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_TOKEN);
	cec_call_clear(&r);
	cec_client_post(&cl, "query_stations_info", body, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &r);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_TOKEN);
	cec_call_clear(&r);
	free(body);
	json_decref(d);
	/* 4004: unknown OperatorID (answered unsigned: no key to sign with) */
	cec_client_t other = cl;
	other.operator_id = "ZZZZZZZZZ";
	cec_client_call(&other, "query_token", json_pack("{s:s, s:s}", "OperatorID", "ZZZZZZZZZ", "OperatorSecret", "x"), &r);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_BIZ);
	cec_call_clear(&r);
	/* 4004: a business field of the wrong type */
	CU_ASSERT_EQUAL(call_ret("query_station_status", json_pack("{s:s}", "StationIDs", "1")), CEC_RET_BIZ);
	CU_ASSERT_EQUAL(call_ret("query_start_charge", json_pack("{s:s, s:s}", "StartChargeSeq", "short", "ConnectorID", cid1)),
			CEC_RET_BIZ);
	/* query_token refusal is business: Ret 0 with SuccStat 1 / FailReason 2 (wrong secret) */
	cec_client_call(&cl, "query_token", json_pack("{s:s, s:s}", "OperatorID", PARTNER_ID, "OperatorSecret", "wrong"), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "SuccStat"), 1);
	CU_ASSERT_EQUAL(jint(r.data, "FailReason"), 2);
	cec_call_clear(&r);
	/* unknown interface under the prefix: HTTP 404, no CEC processing */
	cec_client_post(&cl, "query_everything", "{}", cl.token, &r);
	CU_ASSERT_EQUAL(r.http, 404);
	cec_call_clear(&r);
}

static void test_token_expiry(void)
{
	/* The partner's profile sets token_ttl 3 s: a token stops working after it. */
	cec_client_t c2 = cl;
	CU_ASSERT_EQUAL_FATAL(cec_client_login(&c2), 0);
	CU_ASSERT_EQUAL(call_ret("query_station_status", json_pack("{s:[s]}", "StationIDs", "1")), 0);
	cec_call_t r;
	json_t *d = json_pack("{s:[s]}", "StationIDs", "1");
	cec_client_call(&c2, "query_station_status", json_incref(d), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	cec_call_clear(&r);
	sleep(4);
	cec_client_call(&c2, "query_station_status", json_incref(d), &r);
	CU_ASSERT_EQUAL(r.ret, CEC_RET_TOKEN);
	CU_ASSERT_TRUE(r.signed_ok);
	cec_call_clear(&r);
	json_decref(d);
	/* renew */
	CU_ASSERT_EQUAL(cec_client_login(&cl), 0);
}

/* ---- part 2 ---------------------------------------------------------------------------------- */

static void test_paging(void)
{
	cec_call_t r;
	int64_t ids[3] = {st_a, extra_st[0], extra_st[1]};
	for (int page = 1; page <= 3; page++) {
		cec_client_call(&cl, "query_stations_info", json_pack("{s:i, s:i}", "PageNo", page, "PageSize", 2), &r);
		CU_ASSERT_EQUAL_FATAL(r.ret, 0);
		CU_ASSERT_EQUAL(jint(r.data, "PageNo"), page);
		CU_ASSERT_EQUAL(jint(r.data, "PageCount"), 2);
		CU_ASSERT_EQUAL(jint(r.data, "ItemSize"), 3); /* the hidden station is never counted */
		json_t *infos = evcs_cec_jget(r.data, "StationInfos");
		size_t want = page == 1 ? 2 : page == 2 ? 1 : 0;
		CU_ASSERT_EQUAL(json_array_size(infos), want);
		for (size_t i = 0; i < json_array_size(infos); i++) {
			char idtxt[24];
			snprintf(idtxt, sizeof idtxt, "%lld", (long long)ids[(page - 1) * 2 + i]);
			CU_ASSERT_STRING_EQUAL(jstr(json_array_get(infos, i), "StationID"), idtxt);
		}
		if (page == 1) {
			json_t *s = json_array_get(infos, 0);
			CU_ASSERT_STRING_EQUAL(jstr(s, "OperatorID"), OUR_ID);
			CU_ASSERT_STRING_EQUAL(jstr(s, "StationName"), "一号站");
			CU_ASSERT_EQUAL(jint(s, "StationStatus"), 50);
			CU_ASSERT_EQUAL(jdec(s, "StationLat", 6), 31230416);
			json_t *eq = json_array_get(evcs_cec_jget(s, "EquipmentInfos"), 0);
			CU_ASSERT_STRING_EQUAL(jstr(eq, "EquipmentID"), serial);
			CU_ASSERT_EQUAL(jdec(eq, "Power", 1), 1200); /* 120.0 kW */
			json_t *ci = evcs_cec_jget(eq, "ConnectorInfos");
			CU_ASSERT_EQUAL(json_array_size(ci), 2);
			CU_ASSERT_STRING_EQUAL(jstr(json_array_get(ci, 0), "ConnectorID"), cid1);
		}
		cec_call_clear(&r);
	}
	/* LastQueryTime in the future: nothing changed since */
	cec_client_call(&cl, "query_stations_info",
			json_pack("{s:s, s:i, s:i}", "LastQueryTime", "2099-01-01 00:00:00", "PageNo", 1, "PageSize", 10), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "ItemSize"), 0);
	cec_call_clear(&r);
	/* hidden and unknown stations are left out of query_station_status */
	char a[24], h[24];
	snprintf(a, sizeof a, "%lld", (long long)st_a);
	snprintf(h, sizeof h, "%lld", (long long)st_hidden);
	cec_client_call(&cl, "query_station_status", json_pack("{s:[s,s,s]}", "StationIDs", a, h, "999999999"), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "Total"), 1);
	json_t *ssi = json_array_get(evcs_cec_jget(r.data, "StationStatusInfos"), 0);
	CU_ASSERT_STRING_EQUAL(jstr(ssi, "StationID"), a);
	CU_ASSERT_EQUAL(json_array_size(evcs_cec_jget(ssi, "ConnectorStatusInfos")), 2);
	cec_call_clear(&r);
	/* more than 50 StationIDs: 4004 */
	json_t *many = json_array();
	for (int i = 0; i < 51; i++)
		json_array_append_new(many, json_string("1"));
	CU_ASSERT_EQUAL(call_ret("query_station_status", json_pack("{s:o}", "StationIDs", many)), CEC_RET_BIZ);
	/* stats of a hidden station: 4004 */
	CU_ASSERT_EQUAL(call_ret("query_station_stats", json_pack("{s:s, s:s, s:s}", "StationID", h, "StartTime",
								  "2024-01-01", "EndTime", "2024-01-02")),
			CEC_RET_BIZ);
}

static void test_policy(void)
{
	char seq[28];
	snprintf(seq, sizeof seq, "%s%018d", PARTNER_ID, 1);
	cec_call_t r;
	cec_client_call(&cl, "query_equip_business_policy", json_pack("{s:s, s:s}", "EquipBizSeq", seq, "ConnectorID", cid1), &r);
	CU_ASSERT_EQUAL_FATAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "SuccStat"), 0);
	/* slots 3x16, 2x8, 0x4, 1x4, 2x8, 1x4, 2x4 -> 7 periods */
	CU_ASSERT_EQUAL(jint(r.data, "SumPeriod"), 7);
	json_t *p0 = json_array_get(evcs_cec_jget(r.data, "PolicyInfos"), 0);
	CU_ASSERT_STRING_EQUAL(jstr(p0, "StartTime"), "000000");
	CU_ASSERT_EQUAL(jdec(p0, "ElecPrice", 5), 30000);
	json_t *p2 = json_array_get(evcs_cec_jget(r.data, "PolicyInfos"), 2);
	CU_ASSERT_STRING_EQUAL(jstr(p2, "StartTime"), "120000");
	CU_ASSERT_EQUAL(jdec(p2, "ElecPrice", 5), 120000);
	CU_ASSERT_EQUAL(jdec(p2, "SevicePrice", 5), 80000);
	cec_call_clear(&r);
}

/* ---- full flow: status -> start -> charge status -> stop -> order ---------------------------- */

static void test_flow(void)
{
	size_t st0 = cec_psim_count(psim, "notification_stationStatus");
	/* gun 1 plugged in: a stationStatus push with Status 2 */
	gun_status(1, 2, 1);
	CU_ASSERT_FATAL(wait_count("notification_stationStatus", st0 + 1, 5000));
	json_t *m = nth_msg("notification_stationStatus", st0);
	json_t *csi = evcs_cec_jget(m, "ConnectorStatusInfo");
	CU_ASSERT_STRING_EQUAL(jstr(csi, "ConnectorID"), cid1);
	CU_ASSERT_EQUAL(jint(csi, "Status"), 2);
	json_decref(m);

	/* equip auth: plugged and idle -> success */
	char seq[28];
	snprintf(seq, sizeof seq, "%s%018lld", PARTNER_ID, (long long)(now_ms() % 1000000000000000LL));
	cec_call_t r;
	cec_client_call(&cl, "query_equip_auth", json_pack("{s:s, s:s}", "EquipAuthSeq", seq, "ConnectorID", cid1), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "SuccStat"), 0);
	cec_call_clear(&r);

	/* start: answered at once with StartChargeSeqStat 1; the pile gets "start" */
	cec_client_call(&cl, "query_start_charge", json_pack("{s:s, s:s, s:s}", "StartChargeSeq", seq, "ConnectorID", cid1,
							     "QRCode", "x"), &r);
	CU_ASSERT_EQUAL_FATAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "SuccStat"), 0);
	CU_ASSERT_EQUAL(jint(r.data, "StartChargeSeqStat"), 1);
	cec_call_clear(&r);
	for (int i = 0; i < 100 && !starts; i++)
		usleep(20000);
	pthread_mutex_lock(&pile_mu);
	char trade[40];
	snprintf(trade, sizeof trade, "%s", last_start_trade);
	int nstarts = starts;
	pthread_mutex_unlock(&pile_mu);
	CU_ASSERT_EQUAL_FATAL(nstarts, 1);
	CU_ASSERT_EQUAL(strlen(trade), 32);
	CU_ASSERT_EQUAL(strncmp(trade, cid1, 16), 0);
	/* the plugin recorded the partner's start in its own table before sending "start" */
	int64_t ptid = sql_exec("SELECT id FROM cec_partners WHERE tenant_id = %lld AND operator_id = '%s'",
				(long long)tenant, PARTNER_ID);
	CU_ASSERT_FATAL(ptid > 0);
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM cec_starts WHERE tenant_id = %lld AND partner_id = %lld AND "
				 "partner_seq = '%s' AND trade_no = '%s' AND pile_id = %lld AND gun_no = 1",
				 (long long)tenant, (long long)ptid, seq, trade, (long long)pile_id),
			1);
	/* "start" carries what the pile's owner opens the session with */
	pthread_mutex_lock(&pile_mu);
	CU_ASSERT_STRING_EQUAL(last_start_seq, seq);
	CU_ASSERT_EQUAL(last_start_partner, ptid);
	pthread_mutex_unlock(&pile_mu);
	/* the session the YKC plugin opens for that command (session.create) */
	int64_t sid = sql_exec("INSERT INTO charging_sessions (tenant_id, station_id, pile_id, connector_id, gun_no, "
			       "trade_no, state, start_mode, partner_id, partner_seq) VALUES (%lld, %lld, %lld, %lld, 1, "
			       "'%s', 'starting', 'partner', %lld, '%s')",
			       (long long)tenant, (long long)st_a, (long long)pile_id, (long long)conn1, trade,
			       (long long)ptid, seq);
	CU_ASSERT_FATAL(sid > 0);

	/* the same StartChargeSeq again: refused (FailReason 10) */
	cec_client_call(&cl, "query_start_charge", json_pack("{s:s, s:s}", "StartChargeSeq", seq, "ConnectorID", cid1), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "SuccStat"), 1);
	CU_ASSERT_EQUAL(jint(r.data, "FailReason"), 10);
	cec_call_clear(&r);

	/* the pile starts and charges */
	int64_t t0 = next_ts();
	struct pub started = {EVCS_EV_SESSION_STARTED, 1, {EVCS_FS("trade_no", trade), EVCS_FI("result", 1), EVCS_FI("reason", 0)}, 3, t0};
	run_on_loop(publish_cb, &started);
	gun_status(1, 3, 1);
	for (int k = 1; k <= 2; k++) {
		struct pub ms = {EVCS_EV_METER_SAMPLE, 1,
				 {EVCS_FS("trade_no", trade), EVCS_FI("voltage_dv", 3805), EVCS_FI("current_da", 1203),
				  EVCS_FI("kwh", 12345 * k), EVCS_FI("amount", 2468 * k * 10), EVCS_FI("soc", 40 + k)},
				 6, next_ts()};
		run_on_loop(publish_cb, &ms);
	}
	CU_ASSERT_FATAL(wait_count("notification_start_charge_result", 1, 5000));
	m = nth_msg("notification_start_charge_result", 0);
	CU_ASSERT_STRING_EQUAL(jstr(m, "StartChargeSeq"), seq);
	CU_ASSERT_EQUAL(jint(m, "StartChargeSeqStat"), 2);
	CU_ASSERT_STRING_EQUAL(jstr(m, "ConnectorID"), cid1);
	json_decref(m);
	CU_ASSERT_FATAL(wait_count("notification_equip_charge_status", 2, 5000));
	m = nth_msg("notification_equip_charge_status", 1);
	CU_ASSERT_EQUAL(jint(m, "StartChargeSeqStat"), 2);
	CU_ASSERT_EQUAL(jint(m, "ConnectorStatus"), 3);
	CU_ASSERT_EQUAL(jdec(m, "TotalPower", 4), 24690);  /* 2.4690 kWh, exact */
	CU_ASSERT_EQUAL(jdec(m, "VoltageA", 1), 3805);
	CU_ASSERT_EQUAL(jdec(m, "CurrentA", 1), 1203);
	json_decref(m);

	/* live query */
	cec_client_call(&cl, "query_equip_charge_status", json_pack("{s:s}", "StartChargeSeq", seq), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "StartChargeSeqStat"), 2);
	CU_ASSERT_EQUAL(jdec(r.data, "Soc", 0), 42);
	cec_call_clear(&r);

	/* stop: answered at once (StartChargeSeqStat 3); the pile gets "stop" */
	cec_client_call(&cl, "query_stop_charge", json_pack("{s:s, s:s}", "StartChargeSeq", seq, "ConnectorID", cid1), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "SuccStat"), 0);
	CU_ASSERT_EQUAL(jint(r.data, "StartChargeSeqStat"), 3);
	cec_call_clear(&r);
	for (int i = 0; i < 100 && !stops; i++)
		usleep(20000);
	CU_ASSERT_EQUAL(stops, 1);

	/* what the YKC plugin stores for the finished transaction (0x3B), then its events */
	int64_t t_end = next_ts();
	sql_exec("UPDATE charging_sessions SET state = 'charging', start_ms = %lld, tariff_id = %lld WHERE id = %lld",
		 (long long)t0, (long long)tariff, (long long)sid);
	sql_exec("UPDATE charging_sessions SET state = 'finished', end_ms = %lld, stop_requested_by = 'partner', "
		 "peak_kwh = 10000, peak_amount = 180000, flat_kwh = 14690, flat_amount = 190970, total_kwh = 24690, "
		 "elec_amount = 202830, service_amount = 168140, total_amount = 370970 WHERE id = %lld",
		 (long long)t_end, (long long)sid);
	struct pub stopped = {EVCS_EV_SESSION_STOPPED, 1, {EVCS_FS("trade_no", trade), EVCS_FI("stop_reason", 0x40)}, 2, t_end};
	run_on_loop(publish_cb, &stopped);
	gun_status(1, 2, 1);
	struct pub closed = {EVCS_EV_TRANSACTION_CLOSED, 1,
			     {EVCS_FS("trade_no", trade), EVCS_FI("session_id", sid), EVCS_FI("total_kwh", 24690),
			      EVCS_FI("total_amount", 370970), EVCS_FB("duplicate", 0)},
			     5, next_ts()};
	run_on_loop(publish_cb, &closed);
	CU_ASSERT_FATAL(wait_count("notification_stop_charge_result", 1, 5000));
	m = nth_msg("notification_stop_charge_result", 0);
	CU_ASSERT_STRING_EQUAL(jstr(m, "StartChargeSeq"), seq);
	CU_ASSERT_EQUAL(jint(m, "StartChargeSeqStat"), 4);
	CU_ASSERT_EQUAL(jint(m, "SuccStat"), 0);
	json_decref(m);
	CU_ASSERT_FATAL(wait_count("notification_charge_order_info", 1, 5000));
	m = nth_msg("notification_charge_order_info", 0);
	CU_ASSERT_STRING_EQUAL(jstr(m, "StartChargeSeq"), seq);
	CU_ASSERT_STRING_EQUAL(jstr(m, "ConnectorID"), cid1);
	CU_ASSERT_EQUAL(jdec(m, "TotalMoney", 2), 371);      /* 3.70970 yuan -> 3.71 */
	CU_ASSERT_EQUAL(jdec(m, "TotalElecMoney", 2), 203);  /* 2.02830 -> 2.03 */
	CU_ASSERT_EQUAL(jdec(m, "TotalPower", 4), 24690);
	CU_ASSERT_EQUAL(jint(m, "StopReason"), 1);          /* stopped by the customer operator's platform */
	CU_ASSERT_EQUAL(jint(m, "SumPeriod"), 2);
	json_t *d0 = json_array_get(evcs_cec_jget(m, "ChargeDetails"), 0);
	CU_ASSERT_EQUAL(jdec(d0, "DetailPower", 4), 10000);
	CU_ASSERT_EQUAL(jdec(d0, "ElecPrice", 5), 100000);   /* peak rate */
	CU_ASSERT_EQUAL(jdec(d0, "DetailElecMoney", 2), 100);   /* 1 kWh x 1.00000 yuan/kWh */
	CU_ASSERT_EQUAL(jdec(d0, "DetailSeviceMoney", 2), 80);  /* 1.80 - 1.00 */
	json_t *d1 = json_array_get(evcs_cec_jget(m, "ChargeDetails"), 1);
	CU_ASSERT_EQUAL(jdec(d1, "DetailElecMoney", 2), 103);   /* 1.469 kWh x 0.70000 = 1.02830 */
	json_decref(m);
	/* after the order the session is gone from memory; the query reads the stored row */
	cec_client_call(&cl, "query_equip_charge_status", json_pack("{s:s}", "StartChargeSeq", seq), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "StartChargeSeqStat"), 4);
	CU_ASSERT_EQUAL(jdec(r.data, "TotalPower", 4), 24690);
	cec_call_clear(&r);
	/* an unknown StartChargeSeq is a business error */
	char seq2[28];
	snprintf(seq2, sizeof seq2, "%s%018d", PARTNER_ID, 42);
	CU_ASSERT_EQUAL(call_ret("query_equip_charge_status", json_pack("{s:s}", "StartChargeSeq", seq2)), CEC_RET_BIZ);
	/* stats over today include the session */
	char today[20], a[24];
	time_t now = time(NULL) + 8 * 3600;
	strftime(today, sizeof today, "%Y-%m-%d", gmtime(&now));
	snprintf(a, sizeof a, "%lld", (long long)st_a);
	cec_client_call(&cl, "query_station_stats", json_pack("{s:s, s:s, s:s}", "StationID", a, "StartTime", today, "EndTime", today), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	json_t *ss = evcs_cec_jget(r.data, "StationStats");
	CU_ASSERT_EQUAL(jdec(ss, "StationElectricity", 1), 25); /* 2.469 kWh -> 2.5 */
	cec_call_clear(&r);
	/* every push so far was acknowledged once: nothing left in the outbox */
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM cec_outbox WHERE tenant_id = %lld AND state <> 'done'", (long long)tenant), 0);
}

/* ---- outage, token loss and restart ------------------------------------------------------- */

static int status_seq_ok(size_t from, const int *want, size_t n)
{
	json_t *all = cec_psim_msgs(psim), *m;
	size_t i, k = 0, idx = 0;
	int ok = 1;
	json_array_foreach(all, i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "iface")), "notification_stationStatus"))
			continue;
		if (idx++ < from)
			continue;
		json_t *csi = evcs_cec_jget(json_object_get(m, "data"), "ConnectorStatusInfo");
		if (strcmp(jstr(csi, "ConnectorID"), cid2))
			continue;
		if (k >= n || jint(csi, "Status") != want[k]) {
			fprintf(stderr, "status push %zu: got %lld\n", k, (long long)jint(csi, "Status"));
			ok = 0;
		}
		k++;
	}
	json_decref(all);
	if (k != n) {
		fprintf(stderr, "got %zu status pushes for gun 2, want %zu\n", k, n);
		ok = 0;
	}
	return ok;
}

static void test_outage(void)
{
	size_t base = cec_psim_count(psim, "notification_stationStatus");
	cec_psim_set_down(psim, true);
	/* gun 2: fault, idle, plugged, offline, idle while the partner is down */
	int seq[5][2] = {{1, 0}, {2, 0}, {2, 1}, {0, 0}, {2, 0}};
	int want[5] = {255, 1, 2, 0, 1};
	for (int i = 0; i < 5; i++)
		gun_status(2, seq[i][0], seq[i][1]);
	sleep(2); /* several retries with the backoff capped at 400 ms */
	CU_ASSERT(cec_psim_refused(psim, 503) >= 3);
	CU_ASSERT_EQUAL(cec_psim_count(psim, "notification_stationStatus"), base);
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM cec_outbox WHERE tenant_id = %lld AND state = 'pending' AND "
				 "kind = 'notification_stationStatus'", (long long)tenant), 5);
	/* the partner comes back having lost its tokens: our client gets 4002, renews, delivers */
	cec_psim_forget_tokens(psim);
	unsigned issued = cec_psim_tokens_issued(psim);
	cec_psim_set_down(psim, false);
	CU_ASSERT(wait_count("notification_stationStatus", base + 5, 8000));
	usleep(500000); /* nothing more may arrive */
	CU_ASSERT_EQUAL(cec_psim_count(psim, "notification_stationStatus"), base + 5);
	CU_ASSERT(status_seq_ok(base, want, 5));
	CU_ASSERT(cec_psim_refused(psim, 4002) >= 1);
	CU_ASSERT(cec_psim_tokens_issued(psim) > issued);
	usleep(300000);
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM cec_outbox WHERE tenant_id = %lld AND state <> 'done'", (long long)tenant), 0);
}

static void test_restart(void)
{
	size_t base = cec_psim_count(psim, "notification_stationStatus");
	cec_psim_set_down(psim, true);
	gun_status(2, 2, 1);
	gun_status(2, 1, 0);
	sleep(1);
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM cec_outbox WHERE tenant_id = %lld AND state = 'pending'", (long long)tenant), 2);
	/* the daemon stops with two undelivered pushes and comes back */
	core_down();
	cec_psim_set_down(psim, false);
	CU_ASSERT_FATAL(core_up() == 0);
	CU_ASSERT(wait_count("notification_stationStatus", base + 2, 8000));
	usleep(500000);
	CU_ASSERT_EQUAL(cec_psim_count(psim, "notification_stationStatus"), base + 2);
	int want[2] = {2, 255}; /* core status 1 is a fault */
	CU_ASSERT(status_seq_ok(base, want, 2));
	usleep(300000);
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM cec_outbox WHERE tenant_id = %lld AND state <> 'done'", (long long)tenant), 0);
}

static void test_no_duplicates(void)
{
	/* Idempotency as the partner sees it: each (push, StartChargeSeq) once, except the
	 * periodic charge status; each reconciliation day once. */
	json_t *all = cec_psim_msgs(psim), *m;
	size_t i, j;
	json_array_foreach(all, i, m)
	{
		const char *iface = json_string_value(json_object_get(m, "iface"));
		if (!strcmp(iface, "notification_stationStatus") || !strcmp(iface, "notification_equip_charge_status"))
			continue;
		for (j = i + 1; j < json_array_size(all); j++) {
			json_t *o = json_array_get(all, j);
			if (json_equal(json_object_get(o, "data"), json_object_get(m, "data")) &&
			    !strcmp(iface, json_string_value(json_object_get(o, "iface"))))
			{
				fprintf(stderr, "twice: %s\n", iface);
				CU_FAIL("a push arrived twice");
			}
		}
	}
	json_decref(all);
	/* check_hour = 0: yesterday's reconciliation went out once, with no orders */
	CU_ASSERT_EQUAL(cec_psim_count(psim, "check_charge_orders"), 1);
	json_t *ck = nth_msg("check_charge_orders", 0);
	CU_ASSERT_EQUAL(strncmp(jstr(ck, "CheckOrderSeq"), OUR_ID, 9), 0);
	CU_ASSERT_EQUAL(strlen(jstr(ck, "CheckOrderSeq")), 27);
	CU_ASSERT_EQUAL(jint(ck, "OrderCount"), 0);
	json_decref(ck);
}

static void reg(void)
{
	CU_pSuite s = CU_add_suite("cec_e2e", suite_init, suite_clean);
	EVCS_ADD(s, test_ret_codes);
	EVCS_ADD(s, test_paging);
	EVCS_ADD(s, test_policy);
	EVCS_ADD(s, test_flow);
	EVCS_ADD(s, test_outage);
	EVCS_ADD(s, test_restart);
	EVCS_ADD(s, test_token_expiry);
	EVCS_ADD(s, test_no_duplicates);
}

EVCS_TEST_MAIN(reg)
