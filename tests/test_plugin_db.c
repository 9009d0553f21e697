/*
 * test_plugin_db.c: plugin storage (ABI 2): plugin migrations through the real `evcsd --migrate`
 * and daemon start-up, and the db_* entries of the real API table against a real MariaDB.
 *
 * Needs the EVCS_DB_* environment of tests/mariadb.sh (tests/with-mariadb.sh sets it); without
 * it the suites FAIL with a message (never skipped). Drops and re-creates EVCS_DB_NAME: run the
 * test programs one at a time (make -j1 check). Test plugins: tests/plugins/tp_db.c in four
 * builds (tp_db_v1.so: migration 001; tp_db_v2.so: 001+002; tp_db_bad.so: 001 plus a table
 * outside the prefix; tp_db_plat.so: platform flag, no migrations).
 *
 * Suites:
 *   prefix      evcs_db_plugin_migrations_valid on SQL texts (no database)
 *   migrations  the evcsd binary: fresh, upgrade, refusal when missing / newer / without
 *               [database], bad prefix, the core ignoring plugin tables
 *   api         an in-process core (evcs_core_start) loading tp_db_v2 and tp_dbplat; the test
 *               calls core.api (the table handed to plugins' init) with the plugins' handles
 *               and drives the loop itself; the last test unloads the plugins with work pending
 */
#include "core.h"
#include "db.h"
#include "testdb.h"
#include "testproc.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <mysql.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef EVCS_TOP_SRCDIR
#define EVCS_TOP_SRCDIR "."
#endif

static evcs_db_config_t dbc;
static int env_ok;
static char dir[256], conf[300], log_path[300], out_path[300];
static int http_port;

/* ---- environment and raw SQL ----------------------------------------------------------- */
static int env_init(void)
{
	if (testdb_env(&dbc, "test_plugin_db") != 0)
		return -1;
	snprintf(dir, sizeof dir, "/tmp/test_plugin_db.%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(conf, sizeof conf, "%s/evcsd.conf", dir);
	snprintf(log_path, sizeof log_path, "%s/evcsd.log", dir);
	snprintf(out_path, sizeof out_path, "%s/migrate.out", dir);
	env_ok = 1;
	return 0;
}

static MYSQL *raw_connect(void)
{
	char err[512];
	MYSQL *m = evcs_db_connect_raw(&dbc, 1, err, sizeof err);
	if (!m)
		fprintf(stderr, "connect: %s\n", err);
	return m;
}

/* Runs one statement (results drained); 0 on success. */
static int sql(const char *q)
{
	MYSQL *m = raw_connect();
	if (!m)
		return -1;
	int rc = mysql_query(m, q);
	if (rc)
		fprintf(stderr, "sql: %s: %s\n", q, mysql_error(m));
	do {
		MYSQL_RES *r = mysql_store_result(m);
		if (r)
			mysql_free_result(r);
	} while (mysql_next_result(m) == 0);
	mysql_close(m);
	return rc;
}

/* First column of the first row as an integer; -1 for NULL / no row, -2 on error. */
static long long sql_int(const char *q)
{
	MYSQL *m = raw_connect();
	if (!m)
		return -2;
	long long v = -2;
	if (mysql_query(m, q) == 0) {
		MYSQL_RES *r = mysql_store_result(m);
		MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
		v = row && row[0] ? atoll(row[0]) : -1;
		if (r)
			mysql_free_result(r);
	} else {
		fprintf(stderr, "sql_int: %s: %s\n", q, mysql_error(m));
	}
	mysql_close(m);
	return v;
}

static int table_exists(const char *t)
{
	char q[256];
	snprintf(q, sizeof q,
		 "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
		 "TABLE_NAME = '%s'",
		 t);
	return sql_int(q) == 1;
}

static int reset_db(void)
{
	char q[512];
	snprintf(q, sizeof q,
		 "DROP DATABASE IF EXISTS `%s`; CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE "
		 "utf8mb4_unicode_ci",
		 dbc.name, dbc.name);
	return sql(q);
}

/* ---- config, migrate, daemon ------------------------------------------------------------ */
/* plugins: "" = none, else the text of the [plugin ...] sections. with_db: a [database]. */
static void write_conf(const char *plugins, int with_db)
{
	FILE *f = fopen(conf, "w");
	http_port = test_free_port();
	fprintf(f,
		"[core]\nlog_level = info\nplugin_dir = %s\nschema_dir = %s/schema\n"
		"shutdown_timeout = 2000\n[http]\nlisten = 127.0.0.1:%d\n",
		TEST_PLUGIN_DIR, EVCS_TOP_SRCDIR, http_port);
	if (with_db) {
		fprintf(f, "[database]\n");
		testdb_conf(f, &dbc, 2);
	}
	fprintf(f, "%s", plugins);
	fclose(f);
}

static const char *PLUG_V1 = "[plugin tp_db]\nfile = tp_db_v1.so\n";
static const char *PLUG_V2 = "[plugin tp_db]\nfile = tp_db_v2.so\n";
static const char *PLUG_BAD = "[plugin tp_db]\nfile = tp_db_bad.so\n";

static char *slurp(const char *path)
{
	static char buf[131072];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	return buf;
}

static pid_t spawn(const char *outfile, int migrate)
{
	unlink(outfile); /* so nothing of the previous run is read as this one's */
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		if (migrate == 2)
			execl(EVCSD_BIN, "evcsd", "--check-config", "-c", conf, (char *)NULL);
		else if (migrate)
			execl(EVCSD_BIN, "evcsd", "--migrate", "-c", conf, (char *)NULL);
		else
			execl(EVCSD_BIN, "evcsd", "-f", "-c", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* `evcsd --check-config`: exit status; its output is in out_path. */
static int run_check_config(void)
{
	return test_wait_exit(spawn(out_path, 2), 60);
}

/* `evcsd --migrate`: exit status; its output is in out_path. */
static int run_migrate(void)
{
	return test_wait_exit(spawn(out_path, 1), 60);
}

static int log_has(const char *s, int tries) { return test_file_has(log_path, s, tries); }

/* Starts the daemon; returns its exit status when it stops by itself within 15 s, or, once
 * it logged "running", stops it with SIGTERM and returns 1000 + its exit status. */
static int run_daemon(void)
{
	pid_t pid = spawn(log_path, 0);
	for (int i = 0; i < 750; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (strstr(slurp(log_path), "running (pid")) {
			kill(pid, SIGTERM);
			return 1000 + test_wait_exit(pid, 15);
		}
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* ---- suite: prefix rule (no database) --------------------------------------------------- */
static int valid1(const char *text, char *err, size_t errlen)
{
	evcs_migration_t m[] = {{1, "001_x", text}, {0, NULL, NULL}};
	return evcs_db_plugin_migrations_valid("tp_db", m, err, errlen);
}

static void test_prefix_rule(void)
{
	char err[512];
	static const char *ok[] = {
	    "CREATE TABLE tp_db_a (id INT)",
	    "CREATE TABLE IF NOT EXISTS `tp_db_b` (id INT); ALTER TABLE tp_db_b ADD COLUMN x INT",
	    "CREATE OR REPLACE TABLE evcs.`tp_db_c` (id INT)",
	    "-- CREATE TABLE stations (id INT)\nCREATE TABLE tp_db_d (note VARCHAR(9) DEFAULT 'DROP TABLE x')",
	    "/* ALTER TABLE stations ADD y INT */ DROP TABLE IF EXISTS tp_db_a, tp_db_b",
	    "RENAME TABLE IF EXISTS cec_legacy TO tp_db_legacy, other TO tp_db_other",
	    "ALTER TABLE tp_db_a RENAME COLUMN a TO b; ALTER TABLE tp_db_a RENAME INDEX i TO j",
	    "CREATE INDEX ix ON tp_db_a (id); CREATE UNIQUE INDEX ux ON tp_db_a (id)",
	    "INSERT INTO tp_db_a SELECT id FROM stations; UPDATE tp_db_a SET id = 1",
	    "CREATE TRIGGER tp_db_t BEFORE INSERT ON tp_db_a FOR EACH ROW SET NEW.id = NEW.id + 1",
	    NULL};
	for (int i = 0; ok[i]; i++) {
		err[0] = 0;
		int rc = valid1(ok[i], err, sizeof err);
		if (rc != 1)
			fprintf(stderr, "  accepted expected: %s -> %d %s\n", ok[i], rc, err);
		CU_ASSERT_EQUAL(rc, 1);
	}
	static const struct {
		const char *sql, *msg;
	} bad[] = {
	    {"CREATE TABLE stations_extra (id INT)", "CREATE TABLE `stations_extra` refused"},
	    {"CREATE TABLE tp_dbx (id INT)", "CREATE TABLE `tp_dbx` refused"},
	    {"CREATE TABLE tp_db_ok (id INT); ALTER TABLE stations ADD COLUMN x INT",
	     "ALTER TABLE `stations` refused"},
	    {"ALTER ONLINE IGNORE TABLE piles ADD x INT", "ALTER TABLE `piles` refused"},
	    {"DROP TABLE tp_db_a, tenants", "DROP TABLE `tenants` refused"},
	    {"RENAME TABLE tp_db_a TO sessions", "RENAME TABLE ... TO `sessions` refused"},
	    {"ALTER TABLE tp_db_a RENAME TO stations", "RENAME TO `stations` refused"},
	    {"CREATE INDEX ix ON stations (name)", "CREATE INDEX ... ON `stations` refused"},
	    {"CREATE TRIGGER tp_db_t AFTER INSERT ON piles FOR EACH ROW SET @x = 1",
	     "CREATE TRIGGER ... ON `piles` refused"},
	    {"/*!40101 CREATE TABLE stations2 (id INT) */", "CREATE TABLE `stations2` refused"},
	    {"TRUNCATE TABLE tenants", "TRUNCATE TABLE `tenants` refused"},
	    {"CREATE DATABASE other", "CREATE DATABASE refused"},
	    {"DELIMITER //\nCREATE TABLE tp_db_a (id INT)//", "DELIMITER is a client command"},
	    {NULL, NULL}};
	for (int i = 0; bad[i].sql; i++) {
		err[0] = 0;
		CU_ASSERT_EQUAL(valid1(bad[i].sql, err, sizeof err), EVCS_EINVAL);
		if (!strstr(err, bad[i].msg))
			fprintf(stderr, "  refusal of '%s': got '%s', want '%s'\n", bad[i].sql, err,
				bad[i].msg);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].msg));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "plugin tp_db: migration 001_x"));
	}
	/* numbering */
	evcs_migration_t gap[] = {{1, "001_a", "CREATE TABLE tp_db_a (id INT)"},
				  {3, "003_c", "CREATE TABLE tp_db_c (id INT)"},
				  {0, NULL, NULL}};
	CU_ASSERT_EQUAL(evcs_db_plugin_migrations_valid("tp_db", gap, err, sizeof err), EVCS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "expected 002, found 003"));
	evcs_migration_t nosql[] = {{1, "001_a", NULL}, {0, NULL, NULL}};
	CU_ASSERT_EQUAL(evcs_db_plugin_migrations_valid("tp_db", nosql, err, sizeof err), EVCS_EINVAL);
	CU_ASSERT_EQUAL(evcs_db_plugin_migrations_valid("tp_db", NULL, err, sizeof err), 0);
	evcs_migration_t two[] = {{1, "001_a", "CREATE TABLE tp_db_a (id INT)"},
				  {2, "002_b", "CREATE TABLE tp_db_b (id INT)"},
				  {0, NULL, NULL}};
	CU_ASSERT_EQUAL(evcs_db_plugin_migrations_valid("tp_db", two, err, sizeof err), 2);
	CU_ASSERT_EQUAL(evcs_db_plugin_migrations_valid("Bad-Name", two, err, sizeof err),
			EVCS_EINVAL);
}

/* ---- suite: migrations through the evcsd binary ----------------------------------------- */
static int mig_init(void)
{
	if (!env_ok && env_init() < 0)
		return 1;
	return reset_db() == 0 ? 0 : 1;
}

static void test_fresh_migrate(void)
{
	write_conf(PLUG_V1, 1);
	CU_ASSERT_EQUAL_FATAL(run_migrate(), 0);
	const char *out = slurp(out_path);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "database schema migrated from version 0 to"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "plugin tp_db: schema migrated from version 0 to 1"));
	char q[256];
	snprintf(q, sizeof q, "SELECT MAX(version) FROM schema_version WHERE state = 'applied'");
	CU_ASSERT_EQUAL(sql_int(q), EVCS_DB_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM plugin_schema_version WHERE plugin = 'tp_db'"), 1);
	CU_ASSERT_EQUAL(sql_int("SELECT version FROM plugin_schema_version WHERE plugin = 'tp_db' AND "
				"status = 'applied' AND name = '001_items' AND applied_ms > 0"),
			1);
	CU_ASSERT_TRUE(table_exists("tp_db_items"));
	CU_ASSERT_FALSE(table_exists("tp_db_notes"));
	/* again: nothing to do */
	CU_ASSERT_EQUAL(run_migrate(), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(out_path), "plugin tp_db: schema is current (version 1)"));
	/* the daemon starts the plugin */
	CU_ASSERT_EQUAL(run_daemon(), 1000);
	CU_ASSERT_TRUE(log_has("plugin tp_db: schema version 1", 1));
	CU_ASSERT_TRUE(log_has("tp_db up", 1));
}

static void test_upgrade(void)
{
	long long v1_applied = sql_int("SELECT applied_ms FROM plugin_schema_version WHERE plugin = "
				       "'tp_db' AND version = 1");
	CU_ASSERT_TRUE_FATAL(v1_applied > 0);
	/* a legacy table the new migration adopts under the plugin's prefix */
	CU_ASSERT_EQUAL(sql("CREATE TABLE tpdb_legacy (id INT PRIMARY KEY); INSERT INTO tpdb_legacy "
			    "VALUES (42)"),
			0);
	write_conf(PLUG_V2, 1);
	/* the newer plugin refuses to start until --migrate */
	int st = run_daemon();
	CU_ASSERT(st != 1000 && st != 0 && st != -1);
	CU_ASSERT_TRUE(log_has("plugin tp_db: schema version 1, plugin needs 2: run `evcsd --migrate`", 1));
	CU_ASSERT_TRUE(log_has("required plugin failed to load", 1));
	CU_ASSERT_FALSE(log_has("tp_db up", 1));
	CU_ASSERT_FALSE(table_exists("tp_db_notes"));
	/* --migrate applies only 002 */
	CU_ASSERT_EQUAL_FATAL(run_migrate(), 0);
	const char *out = slurp(out_path);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "database schema is current"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "plugin tp_db: schema migrated from version 1 to 2"));
	CU_ASSERT_EQUAL(sql_int("SELECT applied_ms FROM plugin_schema_version WHERE plugin = 'tp_db' "
				"AND version = 1"),
			v1_applied);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM plugin_schema_version WHERE plugin = 'tp_db' "
				"AND version = 2 AND status = 'applied' AND name = '002_notes'"),
			1);
	CU_ASSERT_TRUE(table_exists("tp_db_notes"));
	CU_ASSERT_TRUE(table_exists("tp_db_legacy"));
	CU_ASSERT_FALSE(table_exists("tpdb_legacy"));
	CU_ASSERT_EQUAL(sql_int("SELECT id FROM tp_db_legacy"), 42);
	CU_ASSERT_EQUAL(run_daemon(), 1000);
	CU_ASSERT_TRUE(log_has("plugin tp_db: schema version 2", 1));
	CU_ASSERT_TRUE(log_has("tp_db up", 1));
}

static void test_newer_refused(void)
{
	/* the database is at 2; the 001-only build is older than its data */
	write_conf(PLUG_V1, 1);
	int st = run_daemon();
	CU_ASSERT(st != 1000 && st != 0 && st != -1);
	CU_ASSERT_TRUE(log_has("plugin tp_db: schema version 2 in the database is newer than the "
			       "plugin's 1: the plugin is older than its data",
			       1));
	CU_ASSERT_FALSE(log_has("tp_db up", 1));
	CU_ASSERT_EQUAL(run_migrate(), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(out_path), "newer than the plugin's 1"));
	/* optional: the daemon runs without it */
	char sec[128];
	snprintf(sec, sizeof sec, "%srequired = false\n", PLUG_V1);
	write_conf(sec, 1);
	CU_ASSERT_EQUAL(run_daemon(), 1000);
	CU_ASSERT_TRUE(log_has("not started, schema mismatch", 1));
	CU_ASSERT_TRUE(log_has("optional, unloaded", 1));
}

static void test_core_ignores_plugin_tables(void)
{
	/* plugin removed from the configuration: its tables and rows stay, the core runs */
	write_conf("", 1);
	CU_ASSERT_EQUAL(run_daemon(), 1000);
	CU_ASSERT_TRUE(log_has("database schema version", 1));
	CU_ASSERT_EQUAL(run_migrate(), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(out_path), "database schema is current"));
	CU_ASSERT_TRUE(table_exists("tp_db_items"));
}

static void test_missing_refused(void)
{
	/* core schema only: the plugin's version is 0 */
	CU_ASSERT_EQUAL_FATAL(reset_db(), 0);
	write_conf("", 1);
	CU_ASSERT_EQUAL_FATAL(run_migrate(), 0);
	write_conf(PLUG_V1, 1);
	int st = run_daemon();
	CU_ASSERT(st != 1000 && st != 0 && st != -1);
	CU_ASSERT_TRUE(log_has("plugin tp_db: schema version 0, plugin needs 1: run `evcsd --migrate`", 1));
	CU_ASSERT_FALSE(table_exists("tp_db_items"));
}

static void test_bad_prefix_refused(void)
{
	write_conf(PLUG_BAD, 1);
	CU_ASSERT_EQUAL(run_migrate(), 1);
	const char *out = slurp(out_path);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "plugin tp_db: migration 002_steal: CREATE TABLE "
					   "`stations_extra` refused: a plugin's tables must be named "
					   "tp_db_..."));
	/* refused before anything was sent: not even its valid 001 */
	CU_ASSERT_FALSE(table_exists("stations_extra"));
	CU_ASSERT_FALSE(table_exists("tp_db_items"));
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM plugin_schema_version WHERE plugin = 'tp_db'"), 0);
	/* the daemon refuses it too (the same check runs before init) */
	int st = run_daemon();
	CU_ASSERT(st != 1000 && st != 0 && st != -1);
	CU_ASSERT_TRUE(log_has("`stations_extra` refused", 1));
	/* and --check-config, without contacting the database */
	CU_ASSERT_EQUAL(run_check_config(), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(out_path), "`stations_extra` refused"));
	write_conf(PLUG_V2, 1);
	CU_ASSERT_EQUAL(run_check_config(), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(out_path), "plugin tp_db: 2 schema migration(s)\n"));
}

static void test_needs_database(void)
{
	write_conf(PLUG_V1, 0);
	int st = run_daemon();
	CU_ASSERT(st != 1000 && st != 0 && st != -1);
	CU_ASSERT_TRUE(log_has("plugin tp_db keeps its own tables (schema migrations) and needs a "
			       "[database] section",
			       1));
	CU_ASSERT_EQUAL(run_check_config(), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(out_path), "1 schema migration(s), but no [database] section"));
	/* a plugin without migrations needs none */
	write_conf("[plugin tp_dbplat]\nfile = tp_db_plat.so\n", 0);
	CU_ASSERT_EQUAL(run_daemon(), 1000);
	CU_ASSERT_TRUE(log_has("tp_db up", 1));
}

/* ---- suite: the API table, in process ---------------------------------------------------- */
static evcs_core_t core;
static int core_up;
static struct evcs_plugin *P, *PP; /* tp_db (no flag), tp_dbplat (platform flag) */
static int64_t tA, tB;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run_until(const int *flag, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	while (!*flag && mono_ms() < end) {
		struct timeval tv = {0, 10000};
		event_base_loopexit(core.base, &tv);
		event_base_loop(core.base, 0);
	}
	return *flag;
}

struct cap {
	int done, calls, status;
	size_t nres, nrows;
	uint64_t insert_id[4];
	char cells[8][64]; /* result set of the last statement: up to 8 cells, row-major */
	int ncells;
	char err[256];
};

static void cap_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		   void *ud)
{
	struct cap *c = ud;
	c->calls++;
	c->done = 1;
	c->status = status;
	c->nres = nres;
	snprintf(c->err, sizeof c->err, "%s", errmsg ? errmsg : "");
	for (size_t i = 0; i < nres && i < 4; i++)
		c->insert_id[i] = res[i].insert_id;
	if (nres) {
		const evcs_db_result_t *r = &res[nres - 1];
		c->nrows = r->nrows;
		c->ncells = 0;
		for (size_t row = 0; row < r->nrows; row++)
			for (unsigned col = 0; col < r->ncols && c->ncells < 8; col++) {
				const char *v = core.api.db_cell(r, row, col);
				snprintf(c->cells[c->ncells++], 64, "%s", v ? v : "NULL");
			}
	}
}

static int wait_cap(struct cap *c)
{
	CU_ASSERT_FATAL(run_until(&c->done, 20000));
	return c->status;
}

static struct evcs_plugin *find_plugin(const char *name)
{
	for (size_t i = 0; i < core.nplugins; i++)
		if (strcmp(core.plugins[i]->name, name) == 0)
			return core.plugins[i];
	return NULL;
}

static int api_init(void)
{
	if (!env_ok && env_init() < 0)
		return 1;
	if (reset_db() != 0)
		return 1;
	write_conf("[plugin tp_db]\nfile = tp_db_v2.so\n[plugin tp_dbplat]\nfile = tp_db_plat.so\n",
		   1);
	if (run_migrate() != 0) {
		fprintf(stderr, "migrate: %s\n", slurp(out_path));
		return 1;
	}
	/* quieter in process: warnings and errors only */
	static char text[sizeof "x" + 131072];
	snprintf(text, sizeof text, "%s", slurp(conf));
	char *lv = strstr(text, "log_level = info");
	if (lv)
		memcpy(lv, "log_level = warn", 16);
	FILE *f = fopen(conf, "w");
	fputs(text, f);
	fclose(f);
	char err[512];
	if (evcs_core_start(&core, conf, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return 1;
	}
	core_up = 1;
	P = find_plugin("tp_db");
	PP = find_plugin("tp_dbplat");
	if (!P || !PP)
		return 1;
	/* two tenants, created by the platform-flagged plugin */
	struct cap c = {0};
	evcs_db_param_t n1[] = {EVCS_DB_STR("Tenant one")}, n2[] = {EVCS_DB_STR("Tenant two")};
	if (core.api.db_query_platform(PP, "INSERT INTO tenants (name) VALUES (?)", n1, 1, 0, cap_cb,
				       &c) != 0 ||
	    !run_until(&c.done, 20000) || c.status != 0)
		return 1;
	tA = (int64_t)c.insert_id[0];
	memset(&c, 0, sizeof c);
	if (core.api.db_query_platform(PP, "INSERT INTO tenants (name) VALUES (?)", n2, 1, 0, cap_cb,
				       &c) != 0 ||
	    !run_until(&c.done, 20000) || c.status != 0)
		return 1;
	tB = (int64_t)c.insert_id[0];
	return tA > 0 && tB > tA ? 0 : 1;
}

static int api_clean(void)
{
	if (core_up)
		evcs_core_free(&core);
	core_up = 0;
	unlink(conf);
	unlink(log_path);
	unlink(out_path);
	rmdir(dir);
	return 0;
}

static void run_loop_ms(int ms)
{
	int never = 0;
	run_until(&never, ms);
}

static void test_api_table(void)
{
	CU_ASSERT_TRUE(EVCS_API_HAS(&core.api, db_query));
	CU_ASSERT_TRUE(EVCS_API_HAS(&core.api, db_col));
	CU_ASSERT_EQUAL(core.api.db_cell_int, evcs_db_cell_i64);
}

static void test_marker_required(void)
{
	struct cap c = {0};
	CU_ASSERT_EQUAL(core.api.db_query(P, tA, "SELECT id, label FROM tp_db_items", NULL, 0, 0,
					  cap_cb, &c),
			EVCS_EINVAL);
	/* `tenant_id <= ?` is not a marker */
	evcs_db_param_t one[] = {EVCS_DB_INT(tB)};
	CU_ASSERT_EQUAL(core.api.db_query(P, tA, "SELECT id FROM tp_db_items WHERE tenant_id <= ?",
					  one, 1, 0, cap_cb, &c),
			EVCS_EINVAL);
	/* no tenant */
	CU_ASSERT_EQUAL(core.api.db_query(P, 0, "SELECT id FROM tp_db_items WHERE tenant_id = ?",
					  NULL, 0, 0, cap_cb, &c),
			EVCS_EINVAL);
	/* a value count that does not match the placeholders */
	CU_ASSERT_EQUAL(core.api.db_query(P, tA, "SELECT id FROM tp_db_items WHERE tenant_id = ?",
					  one, 1, 0, cap_cb, &c),
			EVCS_EINVAL);
	run_loop_ms(100);
	CU_ASSERT_EQUAL(c.calls, 0); /* a refused submit never calls back */
}

static void add_item(int64_t tenant, const char *label, int64_t *id)
{
	struct cap c = {0};
	evcs_db_param_t v[] = {EVCS_DB_STR(label)};
	CU_ASSERT_EQUAL_FATAL(core.api.db_query(P, tenant,
						"INSERT INTO tp_db_items SET tenant_id = ?, label = ?",
						v, 1, 0, cap_cb, &c),
			      0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	if (id)
		*id = (int64_t)c.insert_id[0];
}

static void test_tenant_isolation(void)
{
	add_item(tA, "a-1", NULL);
	add_item(tB, "b-1", NULL);
	add_item(tA, "a-2", NULL);
	struct cap c = {0};
	CU_ASSERT_EQUAL(core.api.db_query(P, tA,
					  "SELECT label FROM tp_db_items WHERE tenant_id = ? ORDER BY id",
					  NULL, 0, 0, cap_cb, &c),
			0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	CU_ASSERT_EQUAL(c.nrows, 2);
	CU_ASSERT_STRING_EQUAL(c.cells[0], "a-1");
	CU_ASSERT_STRING_EQUAL(c.cells[1], "a-2");
	/* a second marker cannot widen the scope: the core binds tA at both */
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(core.api.db_query(P, tA,
					  "SELECT COUNT(*) FROM tp_db_items WHERE tenant_id = ? OR "
					  "tenant_id = ?",
					  NULL, 0, 0, cap_cb, &c),
			0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	CU_ASSERT_STRING_EQUAL(c.cells[0], "2");
	/* tenant two sees only its row; UPDATE with REQUIRE_ROW across tenants matches nothing */
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(core.api.db_query(P, tB, "SELECT label FROM tp_db_items WHERE tenant_id = ?",
					  NULL, 0, 0, cap_cb, &c),
			0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	CU_ASSERT_EQUAL(c.nrows, 1);
	CU_ASSERT_STRING_EQUAL(c.cells[0], "b-1");
	memset(&c, 0, sizeof c);
	evcs_db_param_t upd[] = {EVCS_DB_STR("hijacked"), EVCS_DB_STR("a-1")};
	CU_ASSERT_EQUAL(core.api.db_query(P, tB,
					  "UPDATE tp_db_items SET label = ? WHERE tenant_id = ? AND "
					  "label = ?",
					  upd, 2, EVCS_DB_REQUIRE_ROW, cap_cb, &c),
			0);
	CU_ASSERT_EQUAL(wait_cap(&c), EVCS_ENOENT);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tp_db_items WHERE label = 'hijacked'"), 0);
	/* typed access */
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(core.api.db_query(P, tA, "SELECT tenant_id, label FROM tp_db_items WHERE "
						 "tenant_id = ? ORDER BY id LIMIT 1",
					  NULL, 0, 0, cap_cb, &c),
			0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	CU_ASSERT_EQUAL(atoll(c.cells[0]), tA);
}

static int64_t typed_tenant;
static int typed_col, typed_bad, typed_done;
static void typed_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		     void *ud)
{
	(void)errmsg, (void)ud;
	typed_done = 1;
	if (status || nres != 1)
		return;
	typed_col = core.api.db_col(&res[0], "label");
	typed_bad = core.api.db_cell_int(&res[0], 0, (unsigned)typed_col, &typed_tenant);
	core.api.db_cell_int(&res[0], 0, (unsigned)core.api.db_col(&res[0], "tenant_id"),
			     &typed_tenant);
}

static void test_typed_access(void)
{
	CU_ASSERT_EQUAL(core.api.db_query(P, tB, "SELECT tenant_id, label FROM tp_db_items WHERE "
						 "tenant_id = ?",
					  NULL, 0, 0, typed_cb, NULL),
			0);
	CU_ASSERT_TRUE(run_until(&typed_done, 20000));
	CU_ASSERT_EQUAL(typed_col, 1);
	CU_ASSERT_EQUAL(typed_bad, EVCS_EINVAL); /* "b-1" is not an integer */
	CU_ASSERT_EQUAL(typed_tenant, tB);
}

static void test_txn_refid(void)
{
	evcs_db_txn_t *t = core.api.db_txn_new(P);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	evcs_db_param_t item[] = {EVCS_DB_STR("with-note")};
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tA, "INSERT INTO tp_db_items SET tenant_id = ?, label = ?",
					    item, 1, 0),
			0);
	evcs_db_param_t note[] = {EVCS_DB_REFID(0), EVCS_DB_STR("first note")};
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tA,
					    "INSERT INTO tp_db_notes SET tenant_id = ?, item_id = ?, "
					    "body = ?",
					    note, 2, 0),
			0);
	/* the plugin's transaction is the data layer's own: core code appends to it directly
	 * (as the operator API's audit helper does) */
	evcs_db_param_t note2[] = {EVCS_DB_REFID(0), EVCS_DB_STR("added by the core")};
	CU_ASSERT_EQUAL(evcs_db_txn_add(t, tA,
					"INSERT INTO tp_db_notes SET tenant_id = ?, item_id = ?, body = ?",
					note2, 2, 0),
			0);
	struct cap c = {0};
	CU_ASSERT_EQUAL(core.api.db_txn_submit(t, 0, cap_cb, &c), 0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	CU_ASSERT_EQUAL(c.nres, 3);
	int64_t item_id = (int64_t)c.insert_id[0];
	CU_ASSERT_TRUE(item_id > 0 && c.insert_id[1] > 0 && c.insert_id[2] > c.insert_id[1]);
	char q[256];
	snprintf(q, sizeof q, "SELECT COUNT(*) FROM tp_db_notes WHERE item_id = %lld AND tenant_id = %lld",
		 (long long)item_id, (long long)tA);
	CU_ASSERT_EQUAL(sql_int(q), 2);

	/* a failing statement rolls the whole transaction back */
	t = core.api.db_txn_new(P);
	evcs_db_param_t item2[] = {EVCS_DB_STR("rolled-back")};
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tA, "INSERT INTO tp_db_items SET tenant_id = ?, label = ?",
					    item2, 1, 0),
			0);
	evcs_db_param_t miss[] = {EVCS_DB_STR("x"), EVCS_DB_INT(-1)};
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tA,
					    "UPDATE tp_db_items SET label = ? WHERE tenant_id = ? AND id = ?",
					    miss, 2, EVCS_DB_REQUIRE_ROW),
			0);
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(core.api.db_txn_submit(t, 0, cap_cb, &c), 0);
	CU_ASSERT_EQUAL(wait_cap(&c), EVCS_ENOENT);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tp_db_items WHERE label = 'rolled-back'"), 0);

	/* an add without a marker poisons the transaction; abandoning one frees it */
	t = core.api.db_txn_new(P);
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tA, "DELETE FROM tp_db_items", NULL, 0, 0),
			EVCS_EINVAL);
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(core.api.db_txn_submit(t, 0, cap_cb, &c), EVCS_EINVAL);
	t = core.api.db_txn_new(P);
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tA, "DELETE FROM tp_db_items WHERE tenant_id = ?",
					    NULL, 0, 0),
			0);
	core.api.db_txn_free(t);
	run_loop_ms(100);
	CU_ASSERT_EQUAL(c.calls, 0);
	snprintf(q, sizeof q, "SELECT COUNT(*) FROM tp_db_items WHERE tenant_id = %lld", (long long)tA);
	CU_ASSERT_EQUAL(sql_int(q), 3);
}

static void test_platform_flag(void)
{
	struct cap c = {0};
	/* without the flag: refused at submit, no callback */
	CU_ASSERT_EQUAL(core.api.db_query_platform(P, "SELECT COUNT(*) FROM tenants", NULL, 0, 0,
						   cap_cb, &c),
			EVCS_ENOTSUP);
	evcs_db_txn_t *t = core.api.db_txn_new(P);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tA, "INSERT INTO tp_db_items SET tenant_id = ?, "
						    "label = 'never'",
					    NULL, 0, 0),
			0);
	evcs_db_param_t nm[] = {EVCS_DB_STR("smuggled")};
	CU_ASSERT_EQUAL(core.api.db_txn_add_platform(t, "INSERT INTO tenants (name) VALUES (?)", nm,
						     1, 0),
			EVCS_ENOTSUP);
	CU_ASSERT_EQUAL(core.api.db_txn_submit(t, 0, cap_cb, &c), EVCS_ENOTSUP); /* poisoned */
	run_loop_ms(100);
	CU_ASSERT_EQUAL(c.calls, 0);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tenants WHERE name = 'smuggled'"), 0);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tp_db_items WHERE label = 'never'"), 0);

	/* with the flag: allowed, in queries and in transactions mixed with tenant statements */
	CU_ASSERT_EQUAL(core.api.db_query_platform(PP, "SELECT COUNT(*) FROM tenants", NULL, 0, 0,
						   cap_cb, &c),
			0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	CU_ASSERT_STRING_EQUAL(c.cells[0], "2");
	t = core.api.db_txn_new(PP);
	evcs_db_param_t nm3[] = {EVCS_DB_STR("Tenant three")};
	CU_ASSERT_EQUAL(core.api.db_txn_add_platform(t, "INSERT INTO tenants (name) VALUES (?)", nm3,
						     1, 0),
			0);
	evcs_db_param_t lbl[] = {EVCS_DB_STR("from-platform")};
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tB, "INSERT INTO tp_db_items SET tenant_id = ?, label = ?",
					    lbl, 1, 0),
			0);
	memset(&c, 0, sizeof c);
	CU_ASSERT_EQUAL(core.api.db_txn_submit(t, 0, cap_cb, &c), 0);
	CU_ASSERT_EQUAL(wait_cap(&c), 0);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tenants WHERE name = 'Tenant three'"), 1);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tp_db_items WHERE label = 'from-platform'"), 1);
}

static void test_no_database(void)
{
	/* a core without [database]: same API table, a plugin handle on that core */
	evcs_core_t nodb;
	memset(&nodb, 0, sizeof nodb);
	struct evcs_plugin fake;
	memset(&fake, 0, sizeof fake);
	fake.core = &nodb;
	fake.name = "tp_db";
	fake.info = P->info;
	struct cap c = {0};
	CU_ASSERT_PTR_NULL(core.api.db_txn_new(&fake));
	CU_ASSERT_EQUAL(core.api.db_query(&fake, 1, "SELECT 1 FROM tp_db_items WHERE tenant_id = ?",
					  NULL, 0, 0, cap_cb, &c),
			EVCS_EUNAVAIL);
	CU_ASSERT_EQUAL(core.api.db_txn_add(NULL, 1, "SELECT 1 FROM tp_db_items WHERE tenant_id = ?",
					    NULL, 0, 0),
			EVCS_EUNAVAIL);
	CU_ASSERT_EQUAL(core.api.db_txn_submit(NULL, 0, cap_cb, &c), EVCS_EUNAVAIL);
	fake.info = PP->info;
	CU_ASSERT_EQUAL(core.api.db_query_platform(&fake, "SELECT 1", NULL, 0, 0, cap_cb, &c),
			EVCS_EUNAVAIL);
	CU_ASSERT_EQUAL(c.calls, 0);
	CU_ASSERT_PTR_NULL(nodb.plugin_db);
}

static int late_calls;
static void late_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		    void *ud)
{
	(void)status, (void)res, (void)nres, (void)errmsg, (void)ud;
	late_calls++;
}

static void test_callback_dropped_after_unload(void)
{
	/* a job in flight, and a transaction, when the plugins unload; tp_db's cleanup adds one
	 * more whose callback is in tp_db.so (unmapped after unload: calling it would crash) */
	evcs_db_param_t v[] = {EVCS_DB_STR("late-1")};
	CU_ASSERT_EQUAL(core.api.db_query(P, tA,
					  "INSERT INTO tp_db_items SET tenant_id = ?, label = ?", v,
					  1, 0, late_cb, NULL),
			0);
	evcs_db_txn_t *t = core.api.db_txn_new(PP);
	evcs_db_param_t v2[] = {EVCS_DB_STR("late-2")};
	CU_ASSERT_EQUAL(core.api.db_txn_add(t, tB, "INSERT INTO tp_db_items SET tenant_id = ?, "
						    "label = ?",
					    v2, 1, 0),
			0);
	CU_ASSERT_EQUAL(core.api.db_txn_add_platform(t, "DO SLEEP(0.2)", NULL, 0, 0), 0);
	CU_ASSERT_EQUAL(core.api.db_txn_submit(t, 0, late_cb, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(core.plugin_db);
	evcs_plugins_unload(&core); /* cleanup, plugin_detach, dlclose */
	CU_ASSERT_PTR_NULL(core.plugin_db); /* every pending call orphaned, the list freed */
	run_loop_ms(600);                   /* the jobs complete on the loop: nothing is called */
	CU_ASSERT_EQUAL(late_calls, 0);
	evcs_core_free(&core); /* evcs_db_close runs whatever is left */
	core_up = 0;
	CU_ASSERT_EQUAL(late_calls, 0);
	/* the work itself was done */
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tp_db_items WHERE label = 'late-1'"), 1);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tp_db_items WHERE label = 'late-2'"), 1);
	CU_ASSERT_EQUAL(sql_int("SELECT COUNT(*) FROM tp_db_items WHERE label = 'written at cleanup'"),
			1);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("prefix", NULL, NULL);
	EVCS_ADD(s, test_prefix_rule);
	s = CU_add_suite("migrations", mig_init, NULL);
	EVCS_ADD(s, test_fresh_migrate);
	EVCS_ADD(s, test_upgrade);
	EVCS_ADD(s, test_newer_refused);
	EVCS_ADD(s, test_core_ignores_plugin_tables);
	EVCS_ADD(s, test_missing_refused);
	EVCS_ADD(s, test_bad_prefix_refused);
	EVCS_ADD(s, test_needs_database);
	s = CU_add_suite("api", api_init, api_clean);
	EVCS_ADD(s, test_api_table);
	EVCS_ADD(s, test_marker_required);
	EVCS_ADD(s, test_tenant_isolation);
	EVCS_ADD(s, test_typed_access);
	EVCS_ADD(s, test_txn_refid);
	EVCS_ADD(s, test_platform_flag);
	EVCS_ADD(s, test_no_database);
	EVCS_ADD(s, test_callback_dropped_after_unload);
}

EVCS_TEST_MAIN(register_tests)
