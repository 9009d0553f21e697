/*
 * tests/testdb.c: EVCS_DB_* environment, a fresh database, raw SQL for seeding and checking
 * (contract in tests/testdb.h).
 */
#include "testdb.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int testdb_env(evcs_db_config_t *cfg, const char *prog)
{
	const char *sock = getenv("EVCS_DB_SOCKET"), *dport = getenv("EVCS_DB_PORT");
	const char *user = getenv("EVCS_DB_USER"), *name = getenv("EVCS_DB_NAME");
	if (!user || !name || ((!sock || !*sock) && (!dport || !*dport))) {
		fprintf(stderr, "\n*** FAIL: %s needs a MariaDB: EVCS_DB_SOCKET or EVCS_DB_PORT, "
				"EVCS_DB_USER, EVCS_DB_PASSWORD and EVCS_DB_NAME are not set.\n"
				"*** Run it as: tests/with-mariadb.sh ./tests/%s\n",
			prog, prog);
		return -1;
	}
	memset(cfg, 0, sizeof *cfg);
	cfg->socket = sock && *sock ? sock : NULL;
	cfg->host = "127.0.0.1";
	cfg->port = dport && *dport ? (unsigned)atoi(dport) : 0;
	cfg->user = user;
	cfg->password = getenv("EVCS_DB_PASSWORD");
	cfg->name = name;
	cfg->connect_timeout_s = 3;
	return 0;
}

MYSQL *testdb_reset(const evcs_db_config_t *cfg)
{
	char err[512], q[512];
	MYSQL *c = evcs_db_connect_raw(cfg, 1, err, sizeof err);
	if (!c) {
		fprintf(stderr, "connect: %s\n", err);
		return NULL;
	}
	snprintf(q, sizeof q, "DROP DATABASE IF EXISTS `%s`", cfg->name);
	mysql_query(c, q);
	snprintf(q, sizeof q, "CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		 cfg->name);
	if (mysql_query(c, q) || mysql_select_db(c, cfg->name)) {
		fprintf(stderr, "reset: %s\n", mysql_error(c));
		mysql_close(c);
		return NULL;
	}
	return c;
}

void testdb_conf(FILE *f, const evcs_db_config_t *cfg, int pool)
{
	if (cfg->socket)
		fprintf(f, "socket = %s\n", cfg->socket);
	else
		fprintf(f, "host = 127.0.0.1\nport = %u\n", cfg->port);
	fprintf(f, "user = %s\npassword = %s\nname = %s\npool = %d\n", cfg->user,
		cfg->password ? cfg->password : "", cfg->name, pool);
}

int testdb_sql(MYSQL *c, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (mysql_query(c, q) != 0) {
		fprintf(stderr, "SQL failed: %s: %s\n", q, mysql_error(c));
		return -1;
	}
	MYSQL_RES *r = mysql_store_result(c);
	if (r)
		mysql_free_result(r);
	return 0;
}

long long testdb_qint(MYSQL *c, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (mysql_query(c, q) != 0) {
		fprintf(stderr, "query failed: %s: %s\n", q, mysql_error(c));
		return -2;
	}
	MYSQL_RES *r = mysql_store_result(c);
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	long long v = row && row[0] ? atoll(row[0]) : -1;
	if (r)
		mysql_free_result(r);
	return v;
}

long long testdb_vexec(const evcs_db_config_t *cfg, long long if_none, const char *fmt,
		       va_list ap)
{
	char q[4096], err[256];
	vsnprintf(q, sizeof q, fmt, ap);
	MYSQL *m = evcs_db_connect_raw(cfg, 0, err, sizeof err);
	if (!m) {
		fprintf(stderr, "connect: %s\n", err);
		return -1;
	}
	long long id = -1;
	if (mysql_query(m, q) == 0) {
		id = (long long)mysql_insert_id(m);
		MYSQL_RES *r = mysql_store_result(m);
		if (r) {
			MYSQL_ROW row = mysql_fetch_row(r);
			id = row && row[0] ? atoll(row[0]) : if_none;
			mysql_free_result(r);
		}
	} else
		fprintf(stderr, "SQL failed: %s: %s\n", mysql_error(m), q);
	mysql_close(m);
	return id;
}
