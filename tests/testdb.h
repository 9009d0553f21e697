/*
 * tests/testdb.h: the test programs' side of the private MariaDB that tests/with-mariadb.sh
 * starts (tests/testdb.c; links the core's db.c and MariaDB Connector/C).
 *   testdb_env() fills *cfg from EVCS_DB_SOCKET or EVCS_DB_PORT (host 127.0.0.1), EVCS_DB_USER,
 *   EVCS_DB_PASSWORD, EVCS_DB_NAME (connect timeout 3 s; the strings are the environment's).
 *   0 when they are set; otherwise it prints "*** FAIL: <prog> needs a MariaDB ... Run it as:
 *   tests/with-mariadb.sh ./tests/<prog>" on stderr and returns -1 (the suite fails, never skips).
 *   testdb_reset() connects to the server (without a database), drops and re-creates
 *   cfg->name (utf8mb4) and selects it: the connection, or NULL after printing why.
 *   testdb_conf() writes the lines of an evcsd [database] section for cfg to f (after the caller's
 *   "[database]" line): socket, or host 127.0.0.1 and port; user, password, name and pool.
 *   testdb_sql()/testdb_qint() run a printf-formatted statement on c:
 *   testdb_sql 0, or -1 after printing "SQL failed: <q>: <error>" (results are discarded);
 *   testdb_qint the first column of the first row as an integer, -1 when no row or NULL,
 *   -2 on error (printed).
 *   testdb_vexec() opens its own connection to cfg's database for one statement and closes it:
 *   for a statement with a result, the first column of the first row (if_none when there is no
 *   row or it is NULL); for one without, the last insert id; -1 when it could not connect or the
 *   statement failed (printed).
 */
#ifndef EVCS_TESTDB_H
#define EVCS_TESTDB_H

#include "db.h"

#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>

int testdb_env(evcs_db_config_t *cfg, const char *prog);
MYSQL *testdb_reset(const evcs_db_config_t *cfg);
void testdb_conf(FILE *f, const evcs_db_config_t *cfg, int pool);
int testdb_sql(MYSQL *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long testdb_qint(MYSQL *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long testdb_vexec(const evcs_db_config_t *cfg, long long if_none, const char *fmt,
		       va_list ap);

#endif
