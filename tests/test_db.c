/*
 * test_db.c: the MariaDB data layer and migrations, against a real private server.
 *
 * Needs the EVCS_DB_* environment printed by tests/mariadb.sh (tests/with-mariadb.sh sets it);
 * without it every suite FAILS with a message saying so (never skipped). The database named by
 * EVCS_DB_NAME is dropped and re-created at the start. The restart test runs
 * `$EVCS_MARIADB_SH restart $EVCS_DB_DIR` (default: tests/mariadb.sh in the source tree).
 * Completions are received through a real event_base loop run with timeouts.
 */
#include "db.h"
#include "testutil.h"

#include <event2/event.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef EVCS_TOP_SRCDIR
#define EVCS_TOP_SRCDIR "."
#endif

static evcs_db_config_t cfg;
static char schema_dir[1024];
static struct event_base *base;
static evcs_db_t *db;
static int env_ok;

/* ---- helpers ------------------------------------------------------------------------ */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until *flag becomes non-zero or timeout_ms passes; returns *flag. */
static int run_until(const int *flag, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	while (!*flag && now_ms() < end) {
		struct timeval tv = {0, 10000};
		event_base_loopexit(base, &tv);
		event_base_loop(base, 0);
	}
	return *flag;
}

static void run_for(int ms)
{
	int never = 0;
	run_until(&never, ms);
}

#define MAXC 8
struct cap {
	int done;
	int status;
	char err[256];
	size_t nres;
	size_t nrows;
	uint64_t affected[MAXC];
	uint64_t insert_id[MAXC];
	char *row0[MAXC]; /* first row of the last result set with rows, NULL = SQL NULL */
	int row0_null[MAXC];
	size_t row0_len[MAXC];
	unsigned ncols;
	int calls;
};

static void cap_reset(struct cap *c)
{
	for (int i = 0; i < MAXC; i++)
		free(c->row0[i]);
	memset(c, 0, sizeof *c);
}

static void cap_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		   void *ud)
{
	struct cap *c = ud;
	c->calls++;
	c->done = 1;
	c->status = status;
	snprintf(c->err, sizeof c->err, "%s", errmsg ? errmsg : "");
	c->nres = nres;
	for (size_t i = 0; i < nres && i < MAXC; i++) {
		c->affected[i] = res[i].affected;
		c->insert_id[i] = res[i].insert_id;
		if (res[i].ncols && res[i].nrows) {
			c->nrows = res[i].nrows;
			c->ncols = res[i].ncols;
			for (unsigned k = 0; k < res[i].ncols && k < MAXC; k++) {
				const char *v = evcs_db_cell(&res[i], 0, k);
				free(c->row0[k]);
				c->row0[k] = NULL;
				c->row0_null[k] = v == NULL;
				if (v) {
					c->row0_len[k] = res[i].lens[k];
					c->row0[k] = malloc(c->row0_len[k] + 1);
					memcpy(c->row0[k], v, c->row0_len[k] + 1);
				}
			}
		} else if (res[i].ncols) {
			c->nrows = 0;
		}
	}
}

/* Synchronous wrappers over the asynchronous API (the loop runs while waiting). */
static int qp(struct cap *c, const char *sql, const evcs_db_param_t *p, size_t n)
{
	cap_reset(c);
	int rc = evcs_db_query_platform(db, sql, p, n, 0, cap_cb, c);
	if (rc)
		return rc;
	CU_ASSERT_FATAL(run_until(&c->done, 20000));
	if (c->status)
		fprintf(stderr, "  [qp %d: %s] %s\n", c->status, c->err, sql);
	return c->status;
}

static int qt(struct cap *c, int64_t tenant, const char *sql, const evcs_db_param_t *p, size_t n)
{
	cap_reset(c);
	int rc = evcs_db_query(db, tenant, sql, p, n, 0, cap_cb, c);
	if (rc)
		return rc;
	CU_ASSERT_FATAL(run_until(&c->done, 20000));
	return c->status;
}

static int64_t qint(const char *sql, const evcs_db_param_t *p, size_t n)
{
	struct cap c = {0};
	int64_t v = -999999;
	if (qp(&c, sql, p, n) == 0 && c.nrows > 0 && c.row0[0])
		v = strtoll(c.row0[0], NULL, 10);
	cap_reset(&c);
	return v;
}

/* Blocking side connection for set-up and for poking behind the layer's back. */
static int raw_exec(const char *sql)
{
	char err[256];
	MYSQL *m = evcs_db_connect_raw(&cfg, 1, err, sizeof err);
	if (!m) {
		fprintf(stderr, "raw connect: %s\n", err);
		return -1;
	}
	int rc = mysql_query(m, sql);
	if (rc)
		fprintf(stderr, "raw_exec: %s\n", mysql_error(m));
	else
		do {
			MYSQL_RES *r = mysql_store_result(m);
			if (r)
				mysql_free_result(r);
		} while (mysql_next_result(m) == 0);
	mysql_close(m);
	return rc ? -1 : 0;
}

static int reset_database(void)
{
	char sql[512];
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS `%s`; CREATE DATABASE `%s` CHARACTER SET "
				  "utf8mb4 COLLATE utf8mb4_unicode_ci; USE `%s`",
		 cfg.name, cfg.name, cfg.name);
	return raw_exec(sql);
}

static int open_db(int pool, int queue_max, int unavail_ms)
{
	evcs_db_config_t c = cfg;
	c.pool = pool;
	c.queue_max = queue_max;
	c.unavail_ms = unavail_ms;
	return evcs_db_open(&c, base, &db);
}

static void close_db(void)
{
	evcs_db_close(db);
	db = NULL;
}

static int suite_init(void)
{
	const char *sock = getenv("EVCS_DB_SOCKET"), *port = getenv("EVCS_DB_PORT");
	const char *user = getenv("EVCS_DB_USER"), *name = getenv("EVCS_DB_NAME");
	if (!user || !name || ((!sock || !*sock) && (!port || !*port))) {
		fprintf(stderr, "\n*** test_db needs a MariaDB: EVCS_DB_SOCKET or EVCS_DB_PORT, "
				"EVCS_DB_USER, EVCS_DB_PASSWORD and EVCS_DB_NAME are not set.\n"
				"*** Run it as: tests/with-mariadb.sh ./tests/test_db  (or make check under "
				"tests/with-mariadb.sh)\n");
		return 1;
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.socket = sock;
	cfg.host = getenv("EVCS_DB_HOST") ? getenv("EVCS_DB_HOST") : "127.0.0.1";
	cfg.port = port ? (unsigned)atoi(port) : 0;
	cfg.user = user;
	cfg.password = getenv("EVCS_DB_PASSWORD");
	cfg.name = name;
	cfg.connect_timeout_s = 3;
	snprintf(schema_dir, sizeof schema_dir, "%s/schema", EVCS_TOP_SRCDIR);
	if (!base)
		base = event_base_new();
	if (!base || reset_database() != 0)
		return 1;
	char err[512];
	int from = -1, to = -1;
	if (evcs_db_migrate(&cfg, schema_dir, &from, &to, err, sizeof err) != 0) {
		fprintf(stderr, "migrate: %s\n", err);
		return 1;
	}
	env_ok = 1;
	return 0;
}

static int suite_clean(void)
{
	if (db)
		close_db();
	return 0;
}

/* ---- migrations -------------------------------------------------------------------------- */
static void test_migrate_from_empty_and_rerun(void)
{
	char err[512];
	int from = -1, to = -1;
	CU_ASSERT_FATAL(reset_database() == 0);
	CU_ASSERT_EQUAL(evcs_db_migrate(&cfg, schema_dir, &from, &to, err, sizeof err), 0);
	CU_ASSERT_EQUAL(from, 0);
	CU_ASSERT_EQUAL(to, EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(evcs_db_schema_files_version(schema_dir, err, sizeof err),
			EVCS_DB_SCHEMA_VERSION);
	/* again: nothing to do, same version */
	CU_ASSERT_EQUAL(evcs_db_migrate(&cfg, schema_dir, &from, &to, err, sizeof err), 0);
	CU_ASSERT_EQUAL(from, EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(to, EVCS_DB_SCHEMA_VERSION);
	int dbv = -1, codev = -1;
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, schema_dir, &dbv, &codev, err, sizeof err), 0);
	CU_ASSERT_EQUAL(dbv, EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(codev, EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, NULL, &dbv, &codev, err, sizeof err), 0);

	CU_ASSERT_FATAL(open_db(2, 100, 5000) == 0);
	static const char *const tables[] = {
		"tenants", "api_users", "api_tokens", "audit_log", "login_log", "stations",
		"tenant_scripts", "tariffs", "piles", "pile_presence", "unclaimed_piles", "connectors",
		"mini_programs", "drivers", "driver_openids", "rfid_cards", "wallets", "wallet_ledger",
		"payments", "refunds", "charging_sessions", "transaction_records", "record_conflicts",
		"meter_samples", "alarms", "schema_version"};
	for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
		evcs_db_param_t p[] = {EVCS_DB_STR(tables[i])};
		int64_t n = qint("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
				 "DATABASE() AND TABLE_NAME = ? AND ENGINE = 'InnoDB'",
				 p, 1);
		if (n != 1)
			fprintf(stderr, "missing table %s\n", tables[i]);
		CU_ASSERT_EQUAL(n, 1);
	}
	/* the CEC tables are the cec plugin's (plugins/cec/schema): the core creates none of them */
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
			     "(TABLE_NAME LIKE 'cec\\_%' OR TABLE_NAME LIKE 'partner%' OR TABLE_NAME = 'outbox')",
			     NULL, 0),
			0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM schema_version WHERE state = 'applied'", NULL, 0),
			EVCS_DB_SCHEMA_VERSION);
	/* meter_samples is partitioned by month and has a partition for the current month */
	CU_ASSERT(qint("SELECT COUNT(*) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = "
		       "DATABASE() AND TABLE_NAME = 'meter_samples' AND PARTITION_NAME = CONCAT('p', "
		       "DATE_FORMAT(UTC_DATE(), '%Y%m'))",
		       NULL, 0) == 1);
	close_db();
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static void test_version_check_refuses_newer_schema(void)
{
	char err[512];
	int dbv = -1, codev = -1;
	CU_ASSERT_FATAL(raw_exec("INSERT INTO schema_version (version, name, checksum, state, started_ms, "
				 "applied_ms) VALUES (99, '099_future.sql', REPEAT('0', 64), 'applied', 0, 0)") == 0);
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, schema_dir, &dbv, &codev, err, sizeof err),
			EVCS_ENOTSUP);
	CU_ASSERT_EQUAL(dbv, 99);
	CU_ASSERT_EQUAL(codev, EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "newer"));
	int from, to;
	CU_ASSERT_EQUAL(evcs_db_migrate(&cfg, schema_dir, &from, &to, err, sizeof err), EVCS_ENOTSUP);
	CU_ASSERT_FATAL(raw_exec("DELETE FROM schema_version WHERE version = 99") == 0);
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, schema_dir, &dbv, &codev, err, sizeof err), 0);

	/* a newer file set: the database is older -> check says migrate; migrate applies it */
	char dir[] = "/tmp/evcs-schema-XXXXXX";
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	char cmd[2048], path[1200];
	snprintf(cmd, sizeof cmd, "cp %s/[0-9]*.sql %s/", schema_dir, dir);
	CU_ASSERT_FATAL(system(cmd) == 0);
	snprintf(path, sizeof path, "%s/%03d_extra.sql", dir, EVCS_DB_SCHEMA_VERSION + 1);
	CU_ASSERT_FATAL(write_text(path, "CREATE TABLE zz_extra (id INT PRIMARY KEY);\n"
					 "CREATE TRIGGER zz_t BEFORE INSERT ON zz_extra FOR EACH ROW\n"
					 "BEGIN\n  SET NEW.id = NEW.id + 1;\n  SET NEW.id = NEW.id * 1;\nEND;\n"
					 "INSERT INTO zz_extra VALUES (1);\n") == 0);
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, dir, &dbv, &codev, err, sizeof err), EVCS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "--migrate"));
	CU_ASSERT_EQUAL(evcs_db_migrate(&cfg, dir, &from, &to, err, sizeof err), 0);
	CU_ASSERT_EQUAL(from, EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(to, EVCS_DB_SCHEMA_VERSION + 1);
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, dir, &dbv, &codev, err, sizeof err), 0);
	/* and the real schema dir is now older than the database */
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, schema_dir, &dbv, &codev, err, sizeof err),
			EVCS_ENOTSUP);

	/* a failing file: error names the statement, the version stays 'applying', both the
	 * check and a second run refuse */
	snprintf(path, sizeof path, "%s/%03d_broken.sql", dir, EVCS_DB_SCHEMA_VERSION + 2);
	CU_ASSERT_FATAL(write_text(path, "CREATE TABLE zz_ok (id INT);\nCREATE TABLE zz_bad (id NOSUCHTYPE);\n") == 0);
	CU_ASSERT_EQUAL(evcs_db_migrate(&cfg, dir, &from, &to, err, sizeof err), EVCS_ERR);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "statement 2"));
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, dir, &dbv, &codev, err, sizeof err), EVCS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unfinished"));
	CU_ASSERT_EQUAL(evcs_db_migrate(&cfg, dir, &from, &to, err, sizeof err), EVCS_EINVAL);

	/* gaps in the numbering are refused */
	snprintf(path, sizeof path, "%s/%03d_gap.sql", dir, EVCS_DB_SCHEMA_VERSION + 5);
	CU_ASSERT_FATAL(write_text(path, "SELECT 1;\n") == 0);
	CU_ASSERT_EQUAL(evcs_db_schema_files_version(dir, err, sizeof err), EVCS_EINVAL);

	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT(system(cmd) == 0);
	char sql[256];
	snprintf(sql, sizeof sql, "DELETE FROM schema_version WHERE version > %d; DROP TABLE zz_extra; "
				  "DROP TABLE zz_ok", EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_FATAL(raw_exec(sql) == 0);
	CU_ASSERT_EQUAL(evcs_db_schema_check(&cfg, schema_dir, &dbv, &codev, err, sizeof err), 0);
}

/* ---- queries --------------------------------------------------------------------------------- */
static int64_t make_tenant(const char *name)
{
	struct cap c = {0};
	evcs_db_param_t p[] = {EVCS_DB_STR(name)};
	int64_t id = -1;
	if (qp(&c, "INSERT INTO tenants SET name = ?", p, 1) == 0)
		id = (int64_t)c.insert_id[0];
	cap_reset(&c);
	return id;
}

static void test_binding_null_and_utf8(void)
{
	CU_ASSERT_FATAL(open_db(2, 100, 5000) == 0);
	struct cap c = {0};
	const char *name = "充电 测试 🚗 'quote' \\ back";
	const char *settings = "{\"brand\":\"快充\",\"n\":1}";
	evcs_db_param_t ins[] = {EVCS_DB_STR(name), EVCS_DB_NULL, EVCS_DB_INT(-42),
				 EVCS_DB_STR(settings)};
	/* max_piles has a CHECK >= 0: -42 must be refused, proving the int really is bound */
	CU_ASSERT_EQUAL(qp(&c, "INSERT INTO tenants SET name = ?, expires_ms = ?, max_piles = ?, settings = ?",
			   ins, 4), EVCS_ERR);
	ins[2] = EVCS_DB_INT(7);
	CU_ASSERT_EQUAL_FATAL(qp(&c, "INSERT INTO tenants SET name = ?, expires_ms = ?, max_piles = ?, settings = ?",
				 ins, 4), 0);
	CU_ASSERT_EQUAL(c.affected[0], 1);
	int64_t id = (int64_t)c.insert_id[0];
	CU_ASSERT(id > 0);
	evcs_db_param_t sel[] = {EVCS_DB_INT(id)};
	CU_ASSERT_EQUAL_FATAL(qp(&c, "SELECT name, expires_ms, max_piles, settings, "
				     "CAST(9007199254740993 AS SIGNED) AS big, -5 AS neg, CHAR_LENGTH(name) "
				     "FROM tenants WHERE id = ?",
				 sel, 1), 0);
	CU_ASSERT_EQUAL_FATAL(c.nrows, 1);
	CU_ASSERT_EQUAL(c.ncols, 7);
	CU_ASSERT_STRING_EQUAL(c.row0[0], name);
	CU_ASSERT_EQUAL(c.row0_len[0], strlen(name));
	CU_ASSERT(c.row0_null[1]);
	CU_ASSERT_PTR_NULL(c.row0[1]);
	CU_ASSERT_STRING_EQUAL(c.row0[2], "7");
	CU_ASSERT_STRING_EQUAL(c.row0[3], settings);
	CU_ASSERT_STRING_EQUAL(c.row0[4], "9007199254740993");
	CU_ASSERT_STRING_EQUAL(c.row0[5], "-5");
	CU_ASSERT_STRING_EQUAL(c.row0[6], "22"); /* characters, not bytes: utf8mb4 survived */

	/* a value longer than the layer's inline cell buffer comes back whole */
	char big[5000];
	for (size_t i = 0; i < sizeof big - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof big - 1] = '\0';
	evcs_db_param_t lp[] = {EVCS_DB_STR(big)};
	CU_ASSERT_EQUAL(qp(&c, "SELECT CONCAT(?, '!')", lp, 1), 0);
	CU_ASSERT_EQUAL(c.row0_len[0], strlen(big) + 1);
	CU_ASSERT(c.row0[0] && strncmp(c.row0[0], big, strlen(big)) == 0 && c.row0[0][strlen(big)] == '!');

	/* the result helpers */
	evcs_db_param_t dup[] = {EVCS_DB_STR(name)};
	CU_ASSERT_EQUAL(qp(&c, "INSERT INTO tenants SET name = ?", dup, 1), EVCS_EEXIST);
	CU_ASSERT_EQUAL(qp(&c, "SELECT * FROM no_such_table", NULL, 0), EVCS_ERR);
	CU_ASSERT_PTR_NOT_NULL(strstr(c.err, "no_such_table"));
	CU_ASSERT_EQUAL(qp(&c, "SELECT ?", NULL, 0), EVCS_EINVAL); /* placeholder count mismatch */
	cap_reset(&c);
	close_db();
}

static void test_result_accessors(void)
{
	evcs_db_result_t r;
	char *names[] = {"a", "b"};
	char *cells[] = {"12", NULL, "x", "-3"};
	size_t lens[] = {2, 0, 1, 2};
	memset(&r, 0, sizeof r);
	r.nrows = 2;
	r.ncols = 2;
	r.colnames = names;
	r.cells = cells;
	r.lens = lens;
	int64_t v = 0;
	CU_ASSERT_EQUAL(evcs_db_col(&r, "b"), 1);
	CU_ASSERT_EQUAL(evcs_db_col(&r, "zz"), -1);
	CU_ASSERT_EQUAL(evcs_db_cell_i64(&r, 0, 0, &v), 0);
	CU_ASSERT_EQUAL(v, 12);
	CU_ASSERT_EQUAL(evcs_db_cell_i64(&r, 0, 1, &v), EVCS_ENOENT);
	CU_ASSERT_EQUAL(evcs_db_cell_i64(&r, 1, 0, &v), EVCS_EINVAL);
	CU_ASSERT_EQUAL(evcs_db_cell_i64(&r, 1, 1, &v), 0);
	CU_ASSERT_EQUAL(v, -3);
	CU_ASSERT_PTR_NULL(evcs_db_cell(&r, 2, 0));
}

static int called;
static void must_not_run(int status, const evcs_db_result_t *res, size_t nres, const char *e, void *ud)
{
	called++;
}

static void test_tenant_scope(void)
{
	CU_ASSERT_FATAL(open_db(2, 100, 5000) == 0);
	int64_t ta = make_tenant("scope-A"), tb = make_tenant("scope-B");
	CU_ASSERT_FATAL(ta > 0 && tb > 0);
	struct cap c = {0};
	evcs_db_param_t st[] = {EVCS_DB_STR("A station")};
	CU_ASSERT_EQUAL_FATAL(qt(&c, ta, "INSERT INTO stations SET tenant_id = ?, name = ?", st, 1), 0);
	int64_t sid = (int64_t)c.insert_id[0];
	evcs_db_param_t st2[] = {EVCS_DB_STR("A second")};
	CU_ASSERT_EQUAL(qt(&c, ta, "INSERT INTO stations (`tenant_id`, name) VALUES (?, ?)", st2, 1), 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM stations WHERE tenant_id = ?",
			     (evcs_db_param_t[]){EVCS_DB_INT(ta)}, 1), 2);

	/* the tenant is bound first: A sees its row, B does not */
	evcs_db_param_t byid[] = {EVCS_DB_INT(sid)};
	CU_ASSERT_EQUAL(qt(&c, ta, "SELECT s.name FROM stations s WHERE s.tenant_id = ? AND s.id = ?", byid, 1), 0);
	CU_ASSERT_EQUAL(c.nrows, 1);
	called = 0;
	CU_ASSERT(c.row0[0] && strcmp(c.row0[0], "A station") == 0);
	CU_ASSERT_EQUAL(qt(&c, tb, "SELECT s.name FROM stations s WHERE s.tenant_id = ? AND s.id = ?", byid, 1), 0);
	CU_ASSERT_EQUAL(c.nrows, 0);
	/* a marker later in the statement gets the tenant too; B's scope cannot touch A's row */
	evcs_db_param_t upd[] = {EVCS_DB_STR("hijacked"), EVCS_DB_INT(sid)};
	cap_reset(&c);
	CU_ASSERT_EQUAL(evcs_db_query(db, tb, "UPDATE stations SET name = ? WHERE tenant_id = ? AND id = ?",
				      upd, 2, EVCS_DB_REQUIRE_ROW, cap_cb, &c), 0);
	CU_ASSERT(run_until(&c.done, 10000));
	CU_ASSERT_EQUAL(c.status, EVCS_ENOENT);
	CU_ASSERT_EQUAL(qt(&c, tb, "SELECT COUNT(*) FROM stations WHERE id = ? AND tenant_id = ?", byid, 1), 0);
	CU_ASSERT(c.row0[0] && strcmp(c.row0[0], "0") == 0);
	CU_ASSERT_EQUAL(qt(&c, ta, "SELECT COUNT(*) FROM stations WHERE id = ? AND tenant_id = ?", byid, 1), 0);
	CU_ASSERT(c.row0[0] && strcmp(c.row0[0], "1") == 0);
	/* the caller cannot supply a value for a marker itself: that is a count mismatch */
	evcs_db_param_t smuggle[] = {EVCS_DB_STR("hijacked"), EVCS_DB_INT(ta), EVCS_DB_INT(sid)};
	CU_ASSERT_EQUAL(evcs_db_query(db, tb, "UPDATE stations SET name = ? WHERE tenant_id = ? AND id = ?",
				      smuggle, 3, 0, must_not_run, NULL), EVCS_EINVAL);
	CU_ASSERT_EQUAL(qt(&c, ta, "UPDATE stations SET name = ? WHERE tenant_id = ? AND id = ?", upd, 2), 0);
	CU_ASSERT_EQUAL(c.affected[0], 1);

	/* refused SQL never reaches the database nor the callback */
	called = 0;
	static const char *const bad[] = {
		"SELECT * FROM stations WHERE id = ?",
		"SELECT * FROM stations WHERE tenant_id <> ?",
		"SELECT * FROM stations WHERE tenant_id <=> ?",
		"SELECT * FROM stations WHERE xtenant_id = ?",
		"SELECT * FROM stations WHERE name = 'tenant_id = ?' AND id = ?",
		"SELECT * FROM stations -- tenant_id = ?\n WHERE id = ?",
		"INSERT INTO stations (name, tenant_id) VALUES (?, ?)",
		"SELECT * FROM stations",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = evcs_db_query(db, ta, bad[i], byid, 1, 0, must_not_run, NULL);
		if (rc != EVCS_EINVAL)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CU_ASSERT_EQUAL(rc, EVCS_EINVAL);
	}
	CU_ASSERT_EQUAL(evcs_db_query(db, 0, "SELECT 1 FROM stations WHERE tenant_id = ?", NULL, 0, 0,
				      must_not_run, NULL), EVCS_EINVAL);
	evcs_db_txn_t *t = evcs_db_txn_new(db);
	CU_ASSERT_EQUAL(evcs_db_txn_add(t, ta, "DELETE FROM stations WHERE id = ?", byid, 1, 0), EVCS_EINVAL);
	CU_ASSERT_EQUAL(evcs_db_txn_submit(t, 0, must_not_run, NULL), EVCS_EINVAL); /* poisoned */
	run_for(100);
	CU_ASSERT_EQUAL(called, 0);
	cap_reset(&c);
	close_db();
}

/* ---- transactions --------------------------------------------------------------------------- */
static void test_transaction_commit_and_rollback(void)
{
	CU_ASSERT_FATAL(open_db(2, 100, 5000) == 0);
	int64_t t = make_tenant("txn");
	CU_ASSERT_FATAL(t > 0);
	struct cap c = {0};

	/* commit: driver, then wallet referencing the driver's new id */
	evcs_db_txn_t *x = evcs_db_txn_new(db);
	evcs_db_param_t d[] = {EVCS_DB_STR("13800000001")};
	evcs_db_param_t w[] = {EVCS_DB_REFID(0)};
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", d, 1, 0), 0);
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "INSERT INTO wallets SET tenant_id = ?, driver_id = ?", w, 1, 0), 0);
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "SELECT driver_id FROM wallets WHERE tenant_id = ? AND id = ?",
					(evcs_db_param_t[]){EVCS_DB_REFID(1)}, 1, EVCS_DB_REQUIRE_ROW), 0);
	CU_ASSERT_EQUAL(evcs_db_txn_submit(x, 0, cap_cb, &c), 0);
	CU_ASSERT_FATAL(run_until(&c.done, 10000));
	CU_ASSERT_EQUAL_FATAL(c.status, 0);
	CU_ASSERT_EQUAL(c.nres, 3);
	CU_ASSERT(c.insert_id[0] > 0 && c.insert_id[1] > 0);
	CU_ASSERT(c.row0[0] && strtoll(c.row0[0], NULL, 10) == (long long)c.insert_id[0]);

	/* rollback on a failing statement: the first insert must vanish */
	x = evcs_db_txn_new(db);
	evcs_db_param_t d2[] = {EVCS_DB_STR("13800000002")};
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", d2, 1, 0), 0);
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", d, 1, 0), 0);
	cap_reset(&c);
	CU_ASSERT_EQUAL(evcs_db_txn_submit(x, 0, cap_cb, &c), 0);
	CU_ASSERT_FATAL(run_until(&c.done, 10000));
	CU_ASSERT_EQUAL(c.status, EVCS_EEXIST);
	CU_ASSERT_EQUAL(c.nres, 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM drivers WHERE phone = ?", d2, 1), 0);

	/* rollback on REQUIRE_ROW: an update that matches nothing undoes the insert before it */
	x = evcs_db_txn_new(db);
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", d2, 1, 0), 0);
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "UPDATE drivers SET name = 'n' WHERE tenant_id = ? AND id = -1",
					NULL, 0, EVCS_DB_REQUIRE_ROW), 0);
	cap_reset(&c);
	CU_ASSERT_EQUAL(evcs_db_txn_submit(x, 0, cap_cb, &c), 0);
	CU_ASSERT_FATAL(run_until(&c.done, 10000));
	CU_ASSERT_EQUAL(c.status, EVCS_ENOENT);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM drivers WHERE phone = ?", d2, 1), 0);

	/* the connection is clean afterwards (no transaction left open) */
	CU_ASSERT_EQUAL(qt(&c, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", d2, 1), 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM drivers WHERE phone = ?", d2, 1), 1);

	/* REFID must name an earlier statement */
	x = evcs_db_txn_new(db);
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "INSERT INTO wallets SET tenant_id = ?, driver_id = ?", w, 1, 0),
			EVCS_EINVAL);
	evcs_db_txn_free(x);
	cap_reset(&c);
	close_db();
}

/* ---- queue cap ------------------------------------------------------------------------------ */
static void test_queue_cap_busy(void)
{
	CU_ASSERT_FATAL(open_db(1, 3, 5000) == 0);
	struct cap slow = {0}, q[4];
	memset(q, 0, sizeof q);
	evcs_db_stats_t s;
	/* wait until the single worker is connected and idle */
	for (int i = 0; i < 200; i++) {
		evcs_db_stats(db, &s);
		if (s.connected == 1)
			break;
		run_for(10);
	}
	CU_ASSERT_EQUAL(evcs_db_query_platform(db, "SELECT SLEEP(0.6)", NULL, 0, 0, cap_cb, &slow), 0);
	for (int i = 0; i < 300; i++) {
		evcs_db_stats(db, &s);
		if (s.in_flight == 1)
			break;
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	CU_ASSERT_EQUAL_FATAL(s.in_flight, 1);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(evcs_db_query_platform(db, "SELECT 1", NULL, 0, 0, cap_cb, &q[i]), 0);
	called = 0;
	CU_ASSERT_EQUAL(evcs_db_query_platform(db, "SELECT 1", NULL, 0, 0, must_not_run, NULL), EVCS_EBUSY);
	evcs_db_stats(db, &s);
	CU_ASSERT_EQUAL(s.queue_depth, 3);
	CU_ASSERT_EQUAL(s.jobs_rejected, 1);
	CU_ASSERT(run_until(&q[2].done, 10000));
	CU_ASSERT(slow.done && q[0].done && q[1].done);
	CU_ASSERT_EQUAL(slow.status + q[0].status + q[1].status + q[2].status, 0);
	CU_ASSERT_EQUAL(called, 0);
	/* room again */
	CU_ASSERT_EQUAL(evcs_db_query_platform(db, "SELECT 1", NULL, 0, 0, cap_cb, &q[3]), 0);
	CU_ASSERT(run_until(&q[3].done, 10000));
	evcs_db_stats(db, &s);
	CU_ASSERT_EQUAL(s.jobs_done, 5);
	CU_ASSERT_EQUAL(s.latency_count, 5);
	uint64_t sum = 0;
	for (int i = 0; i < EVCS_DB_LAT_BUCKETS; i++)
		sum += s.latency_bucket[i];
	CU_ASSERT_EQUAL(sum, 5);
	CU_ASSERT(s.latency_us_sum >= 600000); /* the sleeper alone took 0.6 s */
	cap_reset(&slow);
	for (int i = 0; i < 4; i++)
		cap_reset(&q[i]);
	close_db();
}

/* ---- ledger ---------------------------------------------------------------------------------- */
static int ledger(int64_t t, int64_t wallet, int64_t amount, const char *kind, const char *idem,
		  struct cap *c)
{
	evcs_db_param_t p[] = {EVCS_DB_INT(wallet), EVCS_DB_INT(amount), EVCS_DB_STR(kind), EVCS_DB_STR(idem)};
	return qt(c, t, "INSERT INTO wallet_ledger SET tenant_id = ?, wallet_id = ?, amount = ?, kind = ?, idem_key = ?",
		  p, 4);
}

static void test_ledger_balance_is_sum(void)
{
	CU_ASSERT_FATAL(open_db(2, 100, 5000) == 0);
	int64_t t = make_tenant("ledger");
	struct cap c = {0};
	evcs_db_param_t d[] = {EVCS_DB_STR("13900000000")};
	CU_ASSERT_EQUAL_FATAL(qt(&c, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", d, 1), 0);
	int64_t drv = (int64_t)c.insert_id[0];
	evcs_db_param_t wp[] = {EVCS_DB_INT(drv), EVCS_DB_INT(500)};
	CU_ASSERT_EQUAL(qt(&c, t, "INSERT INTO wallets SET tenant_id = ?, driver_id = ?, balance = ?", wp, 2),
			EVCS_ERR); /* a wallet starts at 0 */
	CU_ASSERT_EQUAL_FATAL(qt(&c, t, "INSERT INTO wallets SET tenant_id = ?, driver_id = ?, credit_limit = ?",
				 wp, 2), 0);
	int64_t wal = (int64_t)c.insert_id[0];

	CU_ASSERT_EQUAL(ledger(t, wal, 1000000, "topup", "pay-1", &c), 0);
	CU_ASSERT_EQUAL(ledger(t, wal, -250050, "charge", "sess-1", &c), 0);
	CU_ASSERT_EQUAL(ledger(t, wal, 300, "gift", NULL, &c), 0);
	CU_ASSERT_EQUAL(ledger(t, wal, -250050, "charge", "sess-1", &c), EVCS_EEXIST); /* resent record */
	CU_ASSERT_EQUAL(ledger(t, wal, -800000, "charge", "sess-2", &c), EVCS_ERR);   /* beyond credit */
	CU_ASSERT_EQUAL(ledger(t, wal, -750700, "charge", "sess-3", &c), 0);          /* -450 within 500 */

	evcs_db_param_t wid[] = {EVCS_DB_INT(wal)};
	CU_ASSERT_EQUAL(qint("SELECT balance FROM wallets WHERE id = ?", wid, 1), -450);
	CU_ASSERT_EQUAL(qint("SELECT SUM(amount) FROM wallet_ledger WHERE wallet_id = ?", wid, 1), -450);
	CU_ASSERT_EQUAL(qint("SELECT balance_after FROM wallet_ledger WHERE wallet_id = ? ORDER BY id DESC LIMIT 1",
			     wid, 1), -450);
	/* every balance_after is the running sum */
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM wallet_ledger l WHERE l.wallet_id = ? AND l.balance_after <> "
			     "(SELECT SUM(x.amount) FROM wallet_ledger x WHERE x.wallet_id = l.wallet_id AND x.id <= l.id)",
			     wid, 1), 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM wallet_ledger WHERE wallet_id = ?", wid, 1), 4);

	/* the balance cannot be changed around the ledger, nor the ledger rewritten */
	CU_ASSERT_EQUAL(qp(&c, "UPDATE wallets SET balance = 99999999 WHERE id = ?", wid, 1), EVCS_ERR);
	CU_ASSERT_EQUAL(qp(&c, "UPDATE wallet_ledger SET amount = 1 WHERE wallet_id = ?", wid, 1), EVCS_ERR);
	CU_ASSERT_EQUAL(qp(&c, "DELETE FROM wallet_ledger WHERE wallet_id = ?", wid, 1), EVCS_ERR);
	CU_ASSERT_EQUAL(qp(&c, "UPDATE wallets SET status = 'frozen' WHERE id = ?", wid, 1), 0);
	CU_ASSERT_EQUAL(qint("SELECT balance FROM wallets WHERE id = ?", wid, 1), -450);

	/* ledger row + session-like update in one transaction: both or neither */
	evcs_db_txn_t *x = evcs_db_txn_new(db);
	evcs_db_param_t lp[] = {EVCS_DB_INT(wal), EVCS_DB_INT(-10), EVCS_DB_STR("charge"), EVCS_DB_STR("sess-4")};
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "INSERT INTO wallet_ledger SET tenant_id = ?, wallet_id = ?, amount = ?, kind = ?, idem_key = ?", lp, 4, 0), 0);
	CU_ASSERT_EQUAL(evcs_db_txn_add(x, t, "UPDATE drivers SET name = 'x' WHERE tenant_id = ? AND id = -7", NULL, 0,
					EVCS_DB_REQUIRE_ROW), 0);
	cap_reset(&c);
	CU_ASSERT_EQUAL(evcs_db_txn_submit(x, 0, cap_cb, &c), 0);
	CU_ASSERT(run_until(&c.done, 10000));
	CU_ASSERT_EQUAL(c.status, EVCS_ENOENT);
	CU_ASSERT_EQUAL(qint("SELECT balance FROM wallets WHERE id = ?", wid, 1), -450);
	CU_ASSERT_EQUAL(qint("SELECT SUM(amount) FROM wallet_ledger WHERE wallet_id = ?", wid, 1), -450);
	cap_reset(&c);
	close_db();
}

/* ---- sessions: state machine ----------------------------------------------------------------- */
static int64_t make_pile(int64_t t, const char *serial)
{
	struct cap c = {0};
	evcs_db_param_t p[] = {EVCS_DB_STR(serial)};
	int64_t id = -1;
	if (qt(&c, t, "INSERT INTO piles SET tenant_id = ?, serial = ?", p, 1) == 0)
		id = (int64_t)c.insert_id[0];
	cap_reset(&c);
	return id;
}

static void test_session_state_machine(void)
{
	CU_ASSERT_FATAL(open_db(2, 100, 5000) == 0);
	int64_t t = make_tenant("sessions");
	int64_t pile = make_pile(t, "32010600019236");
	CU_ASSERT_FATAL(pile > 0);
	struct cap c = {0};
	const char *trade = "32010600019236012001061803423060";
	evcs_db_param_t p[] = {EVCS_DB_INT(pile), EVCS_DB_STR(trade)};
	CU_ASSERT_EQUAL_FATAL(qt(&c, t, "INSERT INTO charging_sessions SET tenant_id = ?, pile_id = ?, gun_no = 1, "
				    "trade_no = ?, start_mode = 'app'", p, 2), 0);
	int64_t sid = (int64_t)c.insert_id[0];
	CU_ASSERT_EQUAL(qt(&c, t, "INSERT INTO charging_sessions SET tenant_id = ?, pile_id = ?, gun_no = 1, "
			       "trade_no = ?, start_mode = 'app'", p, 2), EVCS_EEXIST); /* (pile, trade_no) */
	static const char *const ok[] = {"starting", "charging", "stopping", "finished"};
	for (int i = 0; i < 4; i++) {
		/* UPDATE: the tenant is bound at the WHERE marker, the caller passes (state, id) */
		evcs_db_param_t u[] = {EVCS_DB_STR(ok[i]), EVCS_DB_INT(sid)};
		CU_ASSERT_EQUAL(qt(&c, t, "UPDATE charging_sessions SET state = ? WHERE tenant_id = ? AND id = ?", u, 2),
				0);
		CU_ASSERT_EQUAL(c.affected[0], 1);
	}
	evcs_db_param_t back[] = {EVCS_DB_INT(sid)};
	CU_ASSERT_EQUAL(qt(&c, t, "UPDATE charging_sessions SET state = 'charging' WHERE tenant_id = ? AND id = ?", back, 1),
			EVCS_ERR); /* finished is terminal */
	CU_ASSERT_EQUAL(qt(&c, t, "SELECT state FROM charging_sessions WHERE tenant_id = ? AND id = ?", back, 1), 0);
	CU_ASSERT(c.row0[0] && strcmp(c.row0[0], "finished") == 0);
	cap_reset(&c);
	close_db();
}

/* ---- batching --------------------------------------------------------------------------------- */
struct bstat {
	int flushes;
	size_t rows;
	int status;
	int64_t at_ms[16];
};

static void batch_done(int status, size_t rows, void *ud)
{
	struct bstat *b = ud;
	if (b->flushes < 16)
		b->at_ms[b->flushes] = now_ms();
	b->flushes++;
	b->rows += rows;
	if (status)
		b->status = status;
}

static void test_batch_flush_by_size_and_time(void)
{
	CU_ASSERT_FATAL(open_db(2, 100, 5000) == 0);
	int64_t t = make_tenant("batch");
	int64_t pile = make_pile(t, "32010600019237");
	struct cap c = {0};
	evcs_db_param_t p[] = {EVCS_DB_INT(pile), EVCS_DB_STR("32010600019237012001061803423061")};
	CU_ASSERT_EQUAL_FATAL(qt(&c, t, "INSERT INTO charging_sessions SET tenant_id = ?, pile_id = ?, gun_no = 1, "
				    "trade_no = ?, start_mode = 'card'", p, 2), 0);
	int64_t sid = (int64_t)c.insert_id[0];

	struct bstat bs = {0};
	evcs_db_batch_t *b = evcs_db_batch_new(
		db, "meter", "INSERT INTO meter_samples (session_id, ts_ms, kwh, amount, voltage_dv, current_da, "
			     "soc, gun_temp_c, batt_max_temp_c, remaining_min)",
		10, "ON DUPLICATE KEY UPDATE kwh = VALUES(kwh)", 5, 300, batch_done, &bs);
	CU_ASSERT_FATAL(b != NULL);
	int64_t ts0 = 1795000000000; /* 2026-11 */
	for (int i = 0; i < 12; i++) {
		evcs_db_param_t row[] = {EVCS_DB_INT(sid), EVCS_DB_INT(ts0 + i * 15000), EVCS_DB_INT(1000 * i),
					 EVCS_DB_INT(9000 * i), EVCS_DB_INT(3732), EVCS_DB_INT(1012),
					 EVCS_DB_INT(40 + i), EVCS_DB_INT(-5), EVCS_DB_INT(30), EVCS_DB_INT(60 - i)};
		CU_ASSERT_EQUAL(evcs_db_batch_add(b, row), 0);
	}
	int64_t added = now_ms();
	/* two full batches left at once; two rows wait for the timer */
	CU_ASSERT_EQUAL(evcs_db_batch_pending(b), 2);
	int two = 0;
	for (int i = 0; i < 100 && bs.flushes < 2; i++)
		run_for(10);
	two = bs.flushes;
	CU_ASSERT_EQUAL(two, 2);
	CU_ASSERT_EQUAL(bs.rows, 10);
	CU_ASSERT_EQUAL(evcs_db_batch_pending(b), 2);
	for (int i = 0; i < 300 && bs.flushes < 3; i++)
		run_for(10);
	CU_ASSERT_EQUAL(bs.flushes, 3);
	CU_ASSERT_EQUAL(bs.rows, 12);
	CU_ASSERT_EQUAL(bs.status, 0);
	CU_ASSERT(bs.at_ms[2] - added >= 250); /* the timer, not the size, flushed the last two */
	CU_ASSERT_EQUAL(evcs_db_batch_pending(b), 0);
	evcs_db_param_t s[] = {EVCS_DB_INT(sid)};
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM meter_samples WHERE session_id = ?", s, 1), 12);
	CU_ASSERT_EQUAL(qint("SELECT MAX(kwh) FROM meter_samples WHERE session_id = ?", s, 1), 11000);
	CU_ASSERT_EQUAL(qint("SELECT gun_temp_c FROM meter_samples WHERE session_id = ? LIMIT 1", s, 1), -5);
	evcs_db_batch_free(b);

	/* last-seen upserts: one statement, newer timestamps win, rows of two piles */
	int64_t pile2 = make_pile(t, "32010600019238");
	struct bstat ls = {0};
	b = evcs_db_batch_new(db, "last_seen", "INSERT INTO pile_presence (pile_id, tenant_id, online, last_seen_ms)", 4,
			      "ON DUPLICATE KEY UPDATE online = VALUES(online), "
			      "last_seen_ms = GREATEST(last_seen_ms, VALUES(last_seen_ms))",
			      100, 50, batch_done, &ls);
	CU_ASSERT_FATAL(b != NULL);
	int64_t seen[][2] = {{pile, 1000}, {pile2, 500}, {pile, 3000}, {pile, 2000}};
	for (int i = 0; i < 4; i++) {
		evcs_db_param_t row[] = {EVCS_DB_INT(seen[i][0]), EVCS_DB_INT(t), EVCS_DB_INT(1), EVCS_DB_INT(seen[i][1])};
		CU_ASSERT_EQUAL(evcs_db_batch_add(b, row), 0);
	}
	CU_ASSERT_EQUAL(evcs_db_batch_flush(b), 0); /* explicit flush */
	for (int i = 0; i < 300 && ls.flushes < 1; i++)
		run_for(10);
	CU_ASSERT_EQUAL(ls.flushes, 1);
	CU_ASSERT_EQUAL(ls.status, 0);
	evcs_db_param_t q1[] = {EVCS_DB_INT(pile)}, q2[] = {EVCS_DB_INT(pile2)};
	CU_ASSERT_EQUAL(qint("SELECT last_seen_ms FROM pile_presence WHERE pile_id = ?", q1, 1), 3000);
	CU_ASSERT_EQUAL(qint("SELECT last_seen_ms FROM pile_presence WHERE pile_id = ?", q2, 1), 500);
	evcs_db_batch_free(b);
	evcs_db_stats_t st;
	evcs_db_stats(db, &st);
	CU_ASSERT_EQUAL(st.batch_rows_written, 16);
	CU_ASSERT_EQUAL(st.batch_rows_dropped, 0);
	/* a bad shape is refused */
	CU_ASSERT_PTR_NULL(evcs_db_batch_new(db, "big", "INSERT INTO x (a)", 1000, NULL, 100, 10, NULL, NULL));
	cap_reset(&c);
	close_db();
}

/* ---- survive a database restart ---------------------------------------------------------------- */
static void test_survives_database_restart(void)
{
	const char *dir = getenv("EVCS_DB_DIR");
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	const char *sh = getenv("EVCS_MARIADB_SH");
	char script[1200];
	snprintf(script, sizeof script, "%s", sh ? sh : EVCS_TOP_SRCDIR "/tests/mariadb.sh");
	CU_ASSERT_FATAL(open_db(3, 1000, 3000) == 0);
	int64_t t = make_tenant("restart");
	CU_ASSERT_FATAL(t > 0);
	struct cap c = {0};
	CU_ASSERT_EQUAL(qp(&c, "SELECT 1", NULL, 0), 0);

	char marker[1300], cmd[4000];
	snprintf(marker, sizeof marker, "%s/restarted", dir);
	unlink(marker);
	snprintf(cmd, sizeof cmd, "(sh '%s' restart '%s' >'%s/restart.log' 2>&1; touch '%s') &", script, dir, dir,
		 marker);
	CU_ASSERT_FATAL(system(cmd) == 0);

	/* keep submitting reads and writes while the server goes down and comes back */
	enum { N = 200 };
	static struct cap jobs[N];
	memset(jobs, 0, sizeof jobs);
	int n = 0, restarted = 0;
	int64_t end = now_ms() + 60000;
	struct stat sb;
	while (now_ms() < end && n < N) {
		char phone[32];
		snprintf(phone, sizeof phone, "1500000%04d", n);
		evcs_db_param_t p[] = {EVCS_DB_STR(phone)};
		int rc = (n % 2) ? evcs_db_query(db, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", p, 1, 0,
						 cap_cb, &jobs[n])
				 : evcs_db_query(db, t, "SELECT COUNT(*) FROM drivers WHERE tenant_id = ? AND phone <> ?",
						 p, 1, 0, cap_cb, &jobs[n]);
		CU_ASSERT_EQUAL(rc, 0);
		n++;
		run_for(40);
		if (!restarted && stat(marker, &sb) == 0) {
			restarted = n;
			break;
		}
	}
	CU_ASSERT_FATAL(restarted > 0);
	for (int i = 0; i < n; i++)
		CU_ASSERT(run_until(&jobs[i].done, 20000));
	int ok = 0, unavail = 0, other = 0;
	for (int i = 0; i < n; i++) {
		if (jobs[i].status == 0)
			ok++;
		else if (jobs[i].status == EVCS_EUNAVAIL)
			unavail++;
		else {
			other++;
			fprintf(stderr, "  job %d: status %d (%s)\n", i, jobs[i].status, jobs[i].err);
		}
		CU_ASSERT_EQUAL(jobs[i].calls, 1);
		cap_reset(&jobs[i]);
	}
	fprintf(stderr, "  [restart: %d jobs during restart: %d ok, %d unavailable]\n", n, ok, unavail);
	CU_ASSERT_EQUAL(other, 0);
	/* after the restart every new job succeeds */
	for (int i = 0; i < 10; i++) {
		evcs_db_param_t p[] = {EVCS_DB_INT(i)};
		CU_ASSERT_EQUAL(qt(&c, t, "SELECT COUNT(*) FROM drivers WHERE tenant_id = ? AND id > ?", p, 1), 0);
	}
	evcs_db_param_t p[] = {EVCS_DB_STR("15999999999")};
	CU_ASSERT_EQUAL(qt(&c, t, "INSERT INTO drivers SET tenant_id = ?, phone = ?", p, 1), 0);
	evcs_db_stats_t s;
	evcs_db_stats(db, &s);
	CU_ASSERT(s.reconnects >= 1);
	CU_ASSERT_EQUAL(s.queue_depth, 0);
	cap_reset(&c);
	close_db();

	/* a database that stays down: jobs fail with EVCS_EUNAVAIL after unavail_ms */
	evcs_db_config_t down = cfg;
	down.socket = "/nonexistent/evcs.sock";
	down.unavail_ms = 300;
	down.pool = 1;
	CU_ASSERT_FATAL(evcs_db_open(&down, base, &db) == 0);
	int64_t t0 = now_ms();
	CU_ASSERT_EQUAL(evcs_db_query_platform(db, "SELECT 1", NULL, 0, 0, cap_cb, &c), 0);
	CU_ASSERT(run_until(&c.done, 10000));
	CU_ASSERT_EQUAL(c.status, EVCS_EUNAVAIL);
	CU_ASSERT(now_ms() - t0 >= 250);
	CU_ASSERT_PTR_NOT_NULL(strstr(c.err, "unavailable"));
	cap_reset(&c);
	close_db();
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("db", suite_init, suite_clean);
	EVCS_ADD(s, test_migrate_from_empty_and_rerun);
	EVCS_ADD(s, test_version_check_refuses_newer_schema);
	EVCS_ADD(s, test_binding_null_and_utf8);
	EVCS_ADD(s, test_result_accessors);
	EVCS_ADD(s, test_tenant_scope);
	EVCS_ADD(s, test_transaction_commit_and_rollback);
	EVCS_ADD(s, test_queue_cap_busy);
	EVCS_ADD(s, test_ledger_balance_is_sum);
	EVCS_ADD(s, test_session_state_machine);
	EVCS_ADD(s, test_batch_flush_by_size_and_time);
	EVCS_ADD(s, test_survives_database_restart);
}

EVCS_TEST_MAIN(register_tests)
