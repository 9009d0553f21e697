/*
 * tests/test_cec_ykc.c: a CEC partner drives a real charger through evcsd. The real core
 * (evcs_core_start) loads BOTH the ykc and the cec plugin from their .libs, a scripted YKC pile
 * (tests/ykc_pile.c) logs in over TCP, and the partner platform of tests/cec_partner.c calls our
 * CEC routes and records our pushes. The partner itself is configured through the operator API
 * (POST /api/v1/partners, PUT .../stations), and is served once the plugin's refresh picks it up.
 *
 * Flow: query_start_charge -> the pile gets 0x34, answers 0x33 -> notification_start_charge_result;
 * 0x13 -> notification_equip_charge_status and notification_stationStatus; query_stop_charge ->
 * 0x36, 0x35, then the pile's 0x3B -> notification_stop_charge_result and
 * notification_charge_order_info whose periods carry the pile's energy and the platform's money.
 *
 * Threads: the core's loop runs in a background thread; the pile (blocking socket, no pump) and
 * the partner client (blocking libcurl) run in the test thread. Waits are bounded polls on
 * outcomes, never timing assertions. Needs tests/with-mariadb.sh; the database named by
 * EVCS_DB_NAME is dropped and re-created (run the test programs one at a time).
 */
#include "cec_partner.h"
#include "core.h"
#include "db.h"
#include "store.h"
#include "testdb.h"
#include "testhttp.h"
#include "testproc.h"
#include "testloop.h"
#include "testutil.h"
#include "ykc_pile.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <mysql.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int evcs_http_port(evcs_http_t *h);

#define BOOT "cec-ykc-bootstrap-token-0123456789"
#define PILE "32010600019240"
#define PARTNER_ID "PTNRYKC01"
#define OUR_ID "MA1EVCS02"
#define PSECRET "partner-secret-9"
#define OSECRET "evcs-secret-0009"
#define IN_DATA "DDDDDDDDDDDDDDDD"
#define IN_IV "IIIIIIIIIIIIIIII"
#define IN_SIG "in-sig-secret"
#define OUT_DATA "UUUUUUUUUUUUUUUU"
#define OUT_IV "VVVVVVVVVVVVVVVV"
#define OUT_SIG "out-sig-secret"

static evcs_db_config_t dbcfg;
static char conf_path[256];
static evcs_core_t core;
static pthread_t loop_thr;
static int core_running, http_port, ykc_port;
static cec_psim_t *psim;
static cec_client_t cl;
static char base_url[128];
static long long tenant, station, hidden_station, tariff, pile_id, partner;
static struct ykc_pile pile;
static char cid1[20];

/* ---- helpers ---------------------------------------------------------------------------------- */

static long long sql_exec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long sql_exec(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	long long v = testdb_vexec(&dbcfg, -1, fmt, ap);
	va_end(ap);
	return v;
}

/* Operator API call as the platform admin acting on `tenant`; body is stolen. */
static long api(const char *method, const char *path, json_t *body, json_t **out)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	long st = test_http(http_port, method, path, BOOT, tenant, s, NULL, 20L, out, NULL);
	free(s);
	return st;
}

static int64_t jint(const json_t *o, const char *k) { return json_integer_value(evcs_cec_jget(o, k)); }
static const char *jstr(const json_t *o, const char *k) { return json_string_value(evcs_cec_jget(o, k)) ?: ""; }
static int64_t jdec(const json_t *o, const char *k, unsigned scale)
{
	int64_t v = -999999;
	evcs_cec_json_get_dec(evcs_cec_jget(o, k), scale, &v);
	return v;
}

static int wait_count(const char *iface, size_t n, int ms)
{
	for (int i = 0; i < ms / 20 && cec_psim_count(psim, iface) < n; i++)
		usleep(20000);
	return cec_psim_count(psim, iface) >= n;
}

/* The last recorded push of iface matching key == want (NULL: any), new reference or NULL. */
static json_t *last_msg(const char *iface, const char *inner, const char *key, int64_t want)
{
	json_t *all = cec_psim_msgs(psim), *m, *res = NULL;
	size_t i;
	json_array_foreach(all, i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "iface")), iface))
			continue;
		json_t *d = json_object_get(m, "data");
		json_t *x = inner ? evcs_cec_jget(d, inner) : d;
		if (key && jint(x, key) != want)
			continue;
		json_decref(res);
		res = json_incref(d);
	}
	json_decref(all);
	return res;
}

/* Poll the database until the query's first column equals want (bounded); returns the value. */
static long long wait_sql(long long want, int ms, const char *q)
{
	long long v = sql_exec("%s", q);
	for (int i = 0; i < ms / 50 && v != want; i++) {
		usleep(50000);
		v = sql_exec("%s", q);
	}
	return v;
}

/* The Sig member of a raw CEC reply envelope ("" when none). */
static void reply_sig(const char *raw, char out[64])
{
	json_t *j = raw ? json_loads(raw, 0, NULL) : NULL;
	snprintf(out, 64, "%s", json_string_value(json_object_get(j, "Sig")) ?: "");
	json_decref(j);
}

static int has_lower_hex(const char *s) { return strpbrk(s, "abcdef") != NULL; }
static int has_upper_hex(const char *s) { return strpbrk(s, "ABCDEF") != NULL; }

/* Log in until the reply is signed in the wanted case (lower != 0: lowercase): the plugin
 * applies partner changes at its refresh. 0 when it happened within ms. */
static int login_until_sig_case(int lower, int ms)
{
	for (int i = 0; i < ms / 100; i++) {
		cec_call_t r;
		cec_client_call(&cl, "query_token",
				json_pack("{s:s, s:s}", "OperatorID", PARTNER_ID, "OperatorSecret", PSECRET), &r);
		char sig[64];
		reply_sig(r.raw, sig);
		int ok = r.ret == 0 && jint(r.data, "SuccStat") == 0 && r.signed_ok &&
			 (lower ? has_lower_hex(sig) && !has_upper_hex(sig) : has_upper_hex(sig) && !has_lower_hex(sig));
		if (ok)
			snprintf(cl.token, sizeof cl.token, "%s", jstr(r.data, "AccessToken"));
		cec_call_clear(&r);
		if (ok)
			return 0;
		usleep(100000);
	}
	return -1;
}

/* ---- core lifecycle --------------------------------------------------------------------------- */

static void *loop_main(void *arg)
{
	event_base_dispatch(core.base);
	return NULL;
}

static void run_on_loop(void (*fn)(void *), void *arg) { test_run_on_loop(core.base, fn, arg); }

static void stop_loop(void *arg) { event_base_loopbreak(core.base); }

static const char *env(const char *k) { return getenv(k) && *getenv(k) ? getenv(k) : NULL; }

static int suite_init(void)
{
	const char *sock = env("EVCS_DB_SOCKET"), *port = env("EVCS_DB_PORT");
	const char *user = env("EVCS_DB_USER"), *name = env("EVCS_DB_NAME");
	if (!user || !name || (!sock && !port)) {
		fprintf(stderr, "\n*** test_cec_ykc needs a MariaDB: EVCS_DB_SOCKET or EVCS_DB_PORT, EVCS_DB_USER, "
				"EVCS_DB_PASSWORD and EVCS_DB_NAME are not set.\n"
				"*** Run it as: tests/with-mariadb.sh ./tests/test_cec_ykc\n");
		return 1;
	}
	evthread_use_pthreads();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	dbcfg.socket = sock;
	dbcfg.host = env("EVCS_DB_HOST") ? env("EVCS_DB_HOST") : "127.0.0.1";
	dbcfg.port = port ? (unsigned)atoi(port) : 0;
	dbcfg.user = user;
	dbcfg.password = getenv("EVCS_DB_PASSWORD");
	dbcfg.name = name;
	dbcfg.connect_timeout_s = 3;
	char err[512], q[512];
	MYSQL *m = testdb_reset(&dbcfg);
	if (!m)
		return 1;
	mysql_close(m);
	ykc_port = test_free_port();
	snprintf(conf_path, sizeof conf_path, "/tmp/evcs-cec-ykc-%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return 1;
	fprintf(f,
		"[core]\nlog_level = %s\nplugin_dir = %s:%s\nschema_dir = " TEST_SCHEMA_DIR "\n"
		"[http]\nlisten = 127.0.0.1:0\n"
		"[database]\nuser = %s\npassword = %s\nname = %s\n%s%s\nport = %s\nconnect_timeout = 3\npool = 4\n"
		"[api]\nbootstrap_token = " BOOT "\n"
		/* The ykc plugin's clock is UTC here while the CEC plugin numbers orders in China time, so
		 * a trade number the ykc plugin made up itself could never pass for the partner's. */
		"[plugin ykc]\nlisten = 127.0.0.1:%d/1.6\nutc_offset_min = 0\noffline_after_ms = 600000\n"
		"start_timeout_ms = 10000\n"
		"command_timeout_ms = 10000\n"
		"[plugin cec]\ncharge_status_interval = 0\nretry_base_ms = 100\nretry_max_ms = 400\n"
		"refresh_interval = 1\ncheck_hour = -1\ncommand_timeout_ms = 10000\n",
		env("EVCS_TEST_LOG") ? env("EVCS_TEST_LOG") : "err", TEST_YKC_PLUGIN_DIR, TEST_CEC_PLUGIN_DIR, user,
		dbcfg.password ? dbcfg.password : "", name, sock ? "socket = " : "host = ", sock ? sock : dbcfg.host,
		port ? port : "3306", ykc_port);
	fclose(f);
	/* `evcsd --migrate`: the core's schema, then each configured plugin's own tables (ykc_records,
	 * the cec_* tables): the core starts a plugin only when its migrations are applied */
	snprintf(q, sizeof q, "EVCS_SCHEMA_DIR=" TEST_SCHEMA_DIR " " TEST_EVCSD " --migrate -c %s >/dev/null", conf_path);
	if (system(q) != 0) {
		fprintf(stderr, "%s failed\n", q);
		return 1;
	}
	/* One tenant with a visible and a hidden station and a tariff: sharp 1.20 + 0.80, peak
	 * 1.00 + 0.80, flat 0.70 + 0.60, valley 0.35 + 0.40 yuan/kWh. The pile is registered; its
	 * connectors appear when it logs in. */
	tenant = sql_exec("INSERT INTO tenants (name) VALUES ('cec-ykc')");
	station = sql_exec("INSERT INTO stations (tenant_id, name, area_code) VALUES (%lld, 'CEC+YKC', '310115')", tenant);
	hidden_station = sql_exec("INSERT INTO stations (tenant_id, name) VALUES (%lld, 'hidden')", tenant);
	tariff = sql_exec("INSERT INTO tariffs (tenant_id, name, model, sharp_elec_rate, sharp_service_rate, "
			  "peak_elec_rate, peak_service_rate, flat_elec_rate, flat_service_rate, valley_elec_rate, "
			  "valley_service_rate, slots, state) VALUES (%lld, 'std', '0007', 120000, 80000, 100000, "
			  "80000, 70000, 60000, 35000, 40000, '%s', 'active')",
			  tenant, "333333333333333322222222222222222200001111111111");
	pile_id = sql_exec("INSERT INTO piles (tenant_id, station_id, serial, gun_count, tariff_id, rated_power_w) "
			   "VALUES (%lld, %lld, '" PILE "', 1, %lld, 60000)",
			   tenant, station, tariff);
	if (tenant <= 0 || station <= 0 || tariff <= 0 || pile_id <= 0)
		return 1;
	snprintf(cid1, sizeof cid1, "%s01", PILE);

	cec_psim_cfg_t pc = {.partner_id = PARTNER_ID, .evcs_id = OUR_ID,
			     .evcs_keys = {OUT_DATA, OUT_IV, OUT_SIG}, .evcs_secret = OSECRET, .token_ttl = 3600};
	psim = cec_psim_start(&pc);
	if (!psim)
		return 1;
	if (evcs_core_start(&core, conf_path, err, sizeof err) < 0) {
		fprintf(stderr, "core start: %s\n", err);
		return 1;
	}
	pthread_create(&loop_thr, NULL, loop_main, NULL);
	core_running = 1;
	http_port = evcs_http_port(core.http);
	snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d/evcs/v1/", http_port);
	cl.base = base_url;
	cl.operator_id = PARTNER_ID;
	cl.secret = PSECRET;
	cl.keys = (cec_keys_t){IN_DATA, IN_IV, IN_SIG};
	evcs_cec_profile_default(&cl.profile);
	return 0;
}

static int suite_clean(void)
{
	ykc_pile_close(&pile);
	if (core_running) {
		run_on_loop(stop_loop, NULL);
		pthread_join(loop_thr, NULL);
		evcs_core_free(&core);
	}
	cec_psim_stop(psim);
	unlink(conf_path);
	curl_global_cleanup();
	return 0;
}

/* ---- the partner is configured through the operator API --------------------------------------- */

static void test_profile_keys_match_plugin(void)
{
	/* Every key the protocol library knows is settable through the operator API with its
	 * kind, and nothing else is. */
	json_t *prof = json_object();
	size_t n = 0;
	for (const char *k; (k = evcs_cec_profile_key_name(n)); n++) {
		char kind = evcs_cec_profile_key_kind(n);
		json_object_set_new(prof, k, kind == 'b' ? json_true() : json_integer(!strcmp(k, "energy_decimals") ? 3 : 7));
	}
	CU_ASSERT(n > 20);
	json_object_set_new(prof, "preset", json_string("orise"));
	json_t *o = NULL;
	CU_ASSERT_EQUAL_FATAL(api("POST", "/api/v1/partners",
				  json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "name", "keys", "operator_id",
					    "KEYTEST01", "our_operator_id", OUR_ID, "operator_secret", "x", "data_secret",
					    IN_DATA, "data_secret_iv", IN_IV, "sig_secret", "y", "profile", prof),
				  &o),
			      201);
	long long id = jint(o, "id");
	CU_ASSERT_EQUAL(json_object_size(json_object_get(o, "profile")), n + 1);
	json_decref(o);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/partners/%lld", id);
	for (size_t i = 0; i < n; i++) {
		/* the wrong kind is refused, naming the key */
		const char *k = evcs_cec_profile_key_name(i);
		char kind = evcs_cec_profile_key_kind(i);
		o = NULL;
		CU_ASSERT_EQUAL(api("PATCH", path, json_pack("{s:{s:s}}", "profile", k, kind == 'b' ? "yes" : "7"), &o), 400);
		char want[96];
		snprintf(want, sizeof want, "profile.%s", k);
		const char *field = json_string_value(json_object_get(json_object_get(o, "error"), "field"));
		CU_ASSERT(field && !strcmp(field, want));
		json_decref(o);
	}
	o = NULL;
	CU_ASSERT_EQUAL(api("PATCH", path, json_pack("{s:{s:b}}", "profile", "no_such_key", 1), &o), 400);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(o, "error"), "field")) ?: "",
			       "profile.no_such_key");
	json_decref(o);
	static const char *const presets[] = {"cec2016", "orise", "xj", "cjv", "sh"};
	for (size_t i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(api("PATCH", path, json_pack("{s:{s:s}}", "profile", "preset", presets[i]), NULL), 200);
	CU_ASSERT_EQUAL(api("DELETE", path, NULL, NULL), 204);
}

static void test_partner_from_api_served_after_refresh(void)
{
	/* not configured yet: an unknown OperatorID (once the plugin has loaded, Ret -1 until then) */
	cec_call_t r;
	int ret = CEC_RET_BUSY;
	for (int i = 0; i < 100 && ret == CEC_RET_BUSY; i++) {
		cec_client_call(&cl, "query_token",
				json_pack("{s:s, s:s}", "OperatorID", PARTNER_ID, "OperatorSecret", PSECRET), &r);
		ret = r.ret;
		cec_call_clear(&r);
		if (ret == CEC_RET_BUSY)
			usleep(50000);
	}
	CU_ASSERT_EQUAL(ret, CEC_RET_BIZ);

	char url[160];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/p/", cec_psim_port(psim));
	json_t *o = NULL;
	CU_ASSERT_EQUAL_FATAL(api("POST", "/api/v1/partners",
				  json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b}}",
					    "name", "YKC partner", "operator_id", PARTNER_ID, "our_operator_id", OUR_ID,
					    "base_url", url, "operator_secret", PSECRET, "data_secret", IN_DATA,
					    "data_secret_iv", IN_IV, "sig_secret", IN_SIG, "user_operator_secret", OSECRET,
					    "user_data_secret", OUT_DATA, "user_data_secret_iv", OUT_IV, "user_sig_secret",
					    OUT_SIG, "status", "active", "profile", "sig_lower_out", 1),
				  &o),
			      201);
	partner = jint(o, "id");
	CU_ASSERT_STRING_EQUAL(jstr(o, "sig_secret"), "set");
	json_decref(o);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/partners/%lld/stations", partner);
	CU_ASSERT_EQUAL(api("PUT", path, json_pack("{s:[I]}", "station_ids", (json_int_t)station), NULL), 200);

	/* served after the refresh, with its profile: lowercase signatures */
	CU_ASSERT_EQUAL_FATAL(login_until_sig_case(1, 10000), 0);
	/* only the permitted station is visible */
	cec_client_call(&cl, "query_stations_info", json_pack("{s:i, s:i}", "PageNo", 1, "PageSize", 10), &r);
	CU_ASSERT_EQUAL(r.ret, 0);
	CU_ASSERT_EQUAL(jint(r.data, "ItemSize"), 1);
	char sid[24];
	snprintf(sid, sizeof sid, "%lld", station);
	CU_ASSERT_STRING_EQUAL(jstr(json_array_get(evcs_cec_jget(r.data, "StationInfos"), 0), "StationID"), sid);
	cec_call_clear(&r);

	/* a profile change through the API is picked up at the next refresh too */
	snprintf(path, sizeof path, "/api/v1/partners/%lld", partner);
	CU_ASSERT_EQUAL(api("PATCH", path, json_pack("{s:{}}", "profile"), NULL), 200);
	CU_ASSERT_EQUAL_FATAL(login_until_sig_case(0, 10000), 0);
}

/* ---- start -> status -> stop -> order with the pile ------------------------------------------- */

static void realtime(int status, int plugged, const char *trade, uint32_t kwh, uint32_t amount4)
{
	struct evcs_ykc_msg m;
	ykc_msg_realtime(&pile, &m, 1, trade, status, kwh, amount4);
	m.u.realtime.plugged = (uint8_t)plugged;
	m.u.realtime.gun_returned = plugged ? 0 : 1;
	CU_ASSERT(ykc_pile_send(&pile, &m, NULL) > 0);
}

static void cp56_of(time_t t, struct evcs_ykc_cp56 *c)
{
	struct tm tm; /* the pile keeps the ykc plugin's time: UTC in this test */
	gmtime_r(&t, &tm);
	*c = (struct evcs_ykc_cp56){.ms = (uint16_t)(tm.tm_sec * 1000), .minute = (uint8_t)tm.tm_min,
				    .hour = (uint8_t)tm.tm_hour, .mday = (uint8_t)tm.tm_mday,
				    .month = (uint8_t)(tm.tm_mon + 1), .year = (uint8_t)(tm.tm_year % 100)};
}

static void test_start_status_stop_order(void)
{
	/* the pile logs in and reports gun 1 idle with the plug in */
	CU_ASSERT_FATAL(ykc_pile_connect(&pile, ykc_port, PILE, EVCS_YKC_CRC_LE, NULL, NULL) == 0);
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	ykc_msg_login(&pile, &m, 1, 16);
	CU_ASSERT_FATAL(ykc_pile_send(&pile, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pile, 0x02, 5000, &r, NULL) == 0);
	CU_ASSERT_EQUAL_FATAL(r.u.pile_result.result, 0);
	char q[512];
	snprintf(q, sizeof q, "SELECT COUNT(*) FROM connectors WHERE pile_id = %lld", pile_id);
	CU_ASSERT_EQUAL_FATAL(wait_sql(1, 5000, q), 1);
	/* the connector row appeared at login; the plugin's catalog follows at its refresh, and only
	 * guns in the catalog are reported to partners */
	char sid[24];
	snprintf(sid, sizeof sid, "%lld", station);
	int in_catalog = 0;
	cec_call_t c;
	for (int i = 0; i < 100 && !in_catalog; i++) {
		cec_client_call(&cl, "query_station_status", json_pack("{s:[s]}", "StationIDs", sid), &c);
		json_t *ssi = json_array_get(evcs_cec_jget(c.data, "StationStatusInfos"), 0);
		in_catalog = c.ret == 0 && json_array_size(evcs_cec_jget(ssi, "ConnectorStatusInfos")) == 1;
		cec_call_clear(&c);
		if (!in_catalog)
			usleep(100000);
	}
	CU_ASSERT_FATAL(in_catalog);
	const char *zeros = "00000000000000000000000000000000";
	realtime(2, 1, zeros, 0, 0);
	/* notification_stationStatus: plugged, not charging */
	CU_ASSERT_FATAL(wait_count("notification_stationStatus", 1, 5000));
	json_t *st = last_msg("notification_stationStatus", NULL, NULL, 0);
	json_t *csi = evcs_cec_jget(st, "ConnectorStatusInfo");
	CU_ASSERT_STRING_EQUAL(jstr(csi, "ConnectorID"), cid1);
	CU_ASSERT_EQUAL(jint(csi, "Status"), 2);
	json_decref(st);
	/* equipment authentication: idle and plugged in */
	char seq[28];
	snprintf(seq, sizeof seq, "%s%018lld", PARTNER_ID, (long long)(time(NULL) % 1000000000LL));
	cec_client_call(&cl, "query_equip_auth", json_pack("{s:s, s:s}", "EquipAuthSeq", seq, "ConnectorID", cid1), &c);
	CU_ASSERT_EQUAL(c.ret, 0);
	CU_ASSERT_EQUAL(jint(c.data, "SuccStat"), 0);
	cec_call_clear(&c);

	/* query_start_charge: accepted at once; the pile gets 0x34 with the order's number */
	size_t starts0 = cec_psim_count(psim, "notification_start_charge_result");
	cec_client_call(&cl, "query_start_charge",
			json_pack("{s:s, s:s, s:s}", "StartChargeSeq", seq, "ConnectorID", cid1, "QRCode", "x"), &c);
	CU_ASSERT_EQUAL_FATAL(c.ret, 0);
	CU_ASSERT_EQUAL(jint(c.data, "SuccStat"), 0);
	CU_ASSERT_EQUAL(jint(c.data, "StartChargeSeqStat"), 1);
	cec_call_clear(&c);
	CU_ASSERT_FATAL(ykc_pile_wait(&pile, 0x34, 10000, &r, &rx) == 0);
	char trade[33];
	memcpy(trade, r.u.remote_start.trade_no, sizeof trade);
	CU_ASSERT_EQUAL(strlen(trade), 32);
	CU_ASSERT_EQUAL(strncmp(trade, cid1, 16), 0);
	CU_ASSERT_STRING_EQUAL(r.u.remote_start.gun, "01");
	/* the one session row is the partner's, found by pile + trade_no, not a second one */
	snprintf(q, sizeof q,
		 "SELECT COUNT(*) FROM charging_sessions WHERE tenant_id = %lld AND pile_id = %lld AND trade_no = '%s' "
		 "AND partner_id = %lld AND partner_seq = '%s' AND start_mode = 'partner' AND state = 'starting' "
		 "AND tariff_id = %lld",
		 tenant, pile_id, trade, partner, seq, tariff);
	CU_ASSERT_EQUAL(wait_sql(1, 3000, q), 1);
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld", pile_id), 1);
	memset(&m, 0, sizeof m);
	m.type = 0x33;
	memcpy(m.u.remote_start_reply.trade_no, trade, 33);
	memcpy(m.u.remote_start_reply.pile, PILE, 15);
	memcpy(m.u.remote_start_reply.gun, "01", 3);
	m.u.remote_start_reply.result = 1;
	CU_ASSERT_FATAL(ykc_pile_send(&pile, &m, rx.seq) > 0);
	CU_ASSERT_FATAL(wait_count("notification_start_charge_result", starts0 + 1, 8000));
	json_t *sr = last_msg("notification_start_charge_result", NULL, NULL, 0);
	CU_ASSERT_STRING_EQUAL(jstr(sr, "StartChargeSeq"), seq);
	CU_ASSERT_EQUAL(jint(sr, "StartChargeSeqStat"), 2);
	CU_ASSERT_STRING_EQUAL(jstr(sr, "ConnectorID"), cid1);
	json_decref(sr);

	/* 0x13 while charging: charge status and station status pushes */
	realtime(3, 1, trade, 12000, 15600);
	CU_ASSERT_FATAL(wait_count("notification_equip_charge_status", 1, 8000));
	json_t *cs = last_msg("notification_equip_charge_status", NULL, NULL, 0);
	CU_ASSERT_STRING_EQUAL(jstr(cs, "StartChargeSeq"), seq);
	CU_ASSERT_EQUAL(jint(cs, "StartChargeSeqStat"), 2);
	CU_ASSERT_EQUAL(jint(cs, "ConnectorStatus"), 3);
	CU_ASSERT_EQUAL(jdec(cs, "TotalPower", 4), 12000); /* 1.2 kWh from the pile */
	CU_ASSERT_EQUAL(jdec(cs, "VoltageA", 1), 3732);
	json_decref(cs);
	json_t *charging = NULL;
	for (int i = 0; i < 250 && !charging; i++) {
		charging = last_msg("notification_stationStatus", "ConnectorStatusInfo", "Status", 3);
		if (!charging)
			usleep(20000);
	}
	CU_ASSERT_PTR_NOT_NULL(charging);
	json_decref(charging);
	snprintf(q, sizeof q, "SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld AND state = 'charging'",
		 pile_id);
	CU_ASSERT_EQUAL(wait_sql(1, 3000, q), 1);

	/* query_stop_charge: the pile gets 0x36, answers 0x35 and sends its record */
	cec_client_call(&cl, "query_stop_charge", json_pack("{s:s, s:s}", "StartChargeSeq", seq, "ConnectorID", cid1), &c);
	CU_ASSERT_EQUAL(c.ret, 0);
	CU_ASSERT_EQUAL(jint(c.data, "SuccStat"), 0);
	CU_ASSERT_EQUAL(jint(c.data, "StartChargeSeqStat"), 3);
	cec_call_clear(&c);
	CU_ASSERT_FATAL(ykc_pile_wait(&pile, 0x36, 10000, &r, &rx) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.pile_gun.gun, "01");
	memset(&m, 0, sizeof m);
	m.type = 0x35;
	memcpy(m.u.remote_stop_reply.pile, PILE, 15);
	memcpy(m.u.remote_stop_reply.gun, "01", 3);
	m.u.remote_stop_reply.result = 1;
	CU_ASSERT_FATAL(ykc_pile_send(&pile, &m, rx.seq) > 0);
	snprintf(q, sizeof q, "SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld AND state = 'stopping'", pile_id);
	CU_ASSERT_EQUAL(wait_sql(1, 3000, q), 1);
	/* 0x3B: 1 kWh sharp + 2.5 kWh flat. The pile bills 6.00 yuan with its own prices; the
	 * platform recomputes 1 x 2.00 + 2.5 x 1.30 = 5.25 yuan from the tariff. */
	memset(&m, 0, sizeof m);
	m.type = 0x3B;
	struct evcs_ykc_record *rec = &m.u.record;
	memcpy(rec->trade_no, trade, 33);
	memcpy(rec->pile, PILE, 15);
	memcpy(rec->gun, "01", 3);
	time_t now = time(NULL);
	cp56_of(now - 600, &rec->start);
	cp56_of(now, &rec->end);
	rec->trade_time = rec->end;
	rec->sharp_price = 240000;
	rec->sharp_kwh = 10000;
	rec->sharp_loss_kwh = 10000;
	rec->sharp_amount = 24000;
	rec->flat_price = 144000;
	rec->flat_kwh = 25000;
	rec->flat_loss_kwh = 25000;
	rec->flat_amount = 36000;
	rec->meter_start_kwh = 1000000;
	rec->meter_stop_kwh = 1035000;
	rec->total_kwh = 35000;
	rec->total_loss_kwh = 35000;
	rec->total_amount_yuan = 60000;
	rec->trade_flag = 1;
	rec->stop_reason = 0x40;
	CU_ASSERT_FATAL(ykc_pile_send(&pile, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pile, 0x40, 10000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.record_ack.trade_no, trade);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);

	CU_ASSERT_FATAL(wait_count("notification_stop_charge_result", 1, 8000));
	json_t *so = last_msg("notification_stop_charge_result", NULL, NULL, 0);
	CU_ASSERT_STRING_EQUAL(jstr(so, "StartChargeSeq"), seq);
	CU_ASSERT_EQUAL(jint(so, "StartChargeSeqStat"), 4);
	CU_ASSERT_EQUAL(jint(so, "SuccStat"), 0);
	json_decref(so);
	CU_ASSERT_FATAL(wait_count("notification_charge_order_info", 1, 8000));
	json_t *oi = last_msg("notification_charge_order_info", NULL, NULL, 0);
	CU_ASSERT_STRING_EQUAL(jstr(oi, "StartChargeSeq"), seq);
	CU_ASSERT_STRING_EQUAL(jstr(oi, "ConnectorID"), cid1);
	CU_ASSERT_EQUAL(jdec(oi, "TotalPower", 4), 35000);     /* the pile's energy */
	CU_ASSERT_EQUAL(jdec(oi, "TotalMoney", 2), 525);       /* the platform's money, not the pile's 6.00 */
	CU_ASSERT_EQUAL(jdec(oi, "TotalElecMoney", 2), 295);   /* 1.20 + 1.75 */
	CU_ASSERT_EQUAL(jint(oi, "StopReason"), 1);            /* stopped by the partner */
	CU_ASSERT_EQUAL(jint(oi, "SumPeriod"), 2);
	json_t *d = evcs_cec_jget(oi, "ChargeDetails");
	CU_ASSERT_EQUAL_FATAL(json_array_size(d), 2);
	json_t *d0 = json_array_get(d, 0), *d1 = json_array_get(d, 1);
	CU_ASSERT_EQUAL(jdec(d0, "DetailPower", 4), 10000);       /* sharp: 1 kWh */
	CU_ASSERT_EQUAL(jdec(d0, "ElecPrice", 5), 120000);
	CU_ASSERT_EQUAL(jdec(d0, "SevicePrice", 5), 80000);
	CU_ASSERT_EQUAL(jdec(d0, "DetailElecMoney", 2), 120);
	CU_ASSERT_EQUAL(jdec(d0, "DetailSeviceMoney", 2), 80);
	CU_ASSERT_EQUAL(jdec(d1, "DetailPower", 4), 25000);       /* flat: 2.5 kWh */
	CU_ASSERT_EQUAL(jdec(d1, "ElecPrice", 5), 70000);
	CU_ASSERT_EQUAL(jdec(d1, "DetailElecMoney", 2), 175);
	CU_ASSERT_EQUAL(jdec(d1, "DetailSeviceMoney", 2), 150);
	json_decref(oi);

	/* still one session: the partner's row, finished with both figures */
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld", pile_id), 1);
	CU_ASSERT_EQUAL(sql_exec("SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld AND trade_no = '%s' AND "
				 "partner_seq = '%s' AND state = 'finished' AND total_amount = 525000 AND "
				 "pile_amount = 600000 AND sharp_kwh = 10000 AND flat_kwh = 25000",
				 pile_id, trade, seq),
			1);
	/* the partner's status query reads the finished order */
	cec_client_call(&cl, "query_equip_charge_status", json_pack("{s:s}", "StartChargeSeq", seq), &c);
	CU_ASSERT_EQUAL(c.ret, 0);
	CU_ASSERT_EQUAL(jint(c.data, "StartChargeSeqStat"), 4);
	CU_ASSERT_EQUAL(jdec(c.data, "TotalMoney", 2), 525);
	cec_call_clear(&c);
	/* every push was acknowledged */
	snprintf(q, sizeof q, "SELECT COUNT(*) FROM cec_outbox WHERE tenant_id = %lld AND state <> 'done'", tenant);
	CU_ASSERT_EQUAL(wait_sql(0, 5000, q), 0);
}

static void test_partner_deleted_is_no_longer_served(void)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/partners/%lld", partner);
	CU_ASSERT_EQUAL(api("DELETE", path, NULL, NULL), 204);
	int gone = 0;
	for (int i = 0; i < 100 && !gone; i++) {
		cec_call_t r;
		cec_client_call(&cl, "query_token",
				json_pack("{s:s, s:s}", "OperatorID", PARTNER_ID, "OperatorSecret", PSECRET), &r);
		gone = r.ret == CEC_RET_BIZ;
		cec_call_clear(&r);
		if (!gone)
			usleep(100000);
	}
	CU_ASSERT(gone);
}

static void reg(void)
{
	CU_pSuite s = CU_add_suite("cec_ykc", suite_init, suite_clean);
	EVCS_ADD(s, test_profile_keys_match_plugin);
	EVCS_ADD(s, test_partner_from_api_served_after_refresh);
	EVCS_ADD(s, test_start_status_stop_order);
	EVCS_ADD(s, test_partner_deleted_is_no_longer_served);
}

EVCS_TEST_MAIN(reg)
