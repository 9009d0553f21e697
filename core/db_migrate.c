/*
 * db_migrate.c: schema migrations and the start-up version check (see db.h).
 *
 * Blocking, single-threaded, own connection: used by `evcsd --migrate` and before the loop
 * starts. Each NNN_name.sql file is sent whole with CLIENT_MULTI_STATEMENTS, so the server's
 * own parser splits statements (trigger and procedure bodies with inner `;` need no DELIMITER,
 * which is a client-side command and is refused). MariaDB commits DDL implicitly, so a file
 * cannot be applied atomically; instead its schema_version row is written 'applying' before
 * and 'applied' after, and a leftover 'applying' row stops every later run and the check.
 * Concurrent runners are serialised with GET_LOCK('evcs_migrate').
 */
#include "db.h"
#include "db_internal.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_MIGRATIONS 999

struct mfile {
	int version;
	char name[128];
};

static int cmp_mfile(const void *a, const void *b)
{
	const struct mfile *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

/* NNN_name.sql: at least one digit, '_', then [A-Za-z0-9_-]+, ".sql". */
static int parse_name(const char *n, int *version)
{
	size_t i = 0, len = strlen(n);
	int v = 0;
	while (n[i] >= '0' && n[i] <= '9') {
		v = v * 10 + (n[i] - '0');
		if (v > MAX_MIGRATIONS)
			return -1;
		i++;
	}
	if (i == 0 || n[i] != '_' || len < i + 6 || strcmp(n + len - 4, ".sql") != 0)
		return -1;
	for (size_t k = i + 1; k < len - 4; k++) {
		char c = n[k];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return -1;
	}
	*version = v;
	return 0;
}

/* Lists migration files sorted by version; checks 1..N without gaps or duplicates. */
static int list_files(const char *dir, struct mfile **out, size_t *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "cannot read schema directory %s: %s", dir, strerror(errno));
		return EVCS_EINVAL;
	}
	struct mfile *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		int ver;
		if (parse_name(de->d_name, &ver) != 0 || strlen(de->d_name) >= sizeof v->name)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			struct mfile *nv = realloc(v, cap * sizeof *v);
			if (!nv) {
				free(v);
				closedir(d);
				snprintf(err, errlen, "out of memory");
				return EVCS_ENOMEM;
			}
			v = nv;
		}
		v[cnt].version = ver;
		snprintf(v[cnt].name, sizeof v[cnt].name, "%.127s", de->d_name);
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof *v, cmp_mfile);
	for (size_t i = 0; i < cnt; i++) {
		if (v[i].version != (int)i + 1) {
			snprintf(err, errlen, "schema directory %s: expected migration %03zu, found %s", dir,
				 i + 1, v[i].name);
			free(v);
			return EVCS_EINVAL;
		}
	}
	*out = v;
	*n = cnt;
	return 0;
}

int evcs_db_schema_files_version(const char *schema_dir, char *err, size_t errlen)
{
	struct mfile *v = NULL;
	size_t n = 0;
	int rc = list_files(schema_dir, &v, &n, err, errlen);
	free(v);
	return rc < 0 ? rc : (int)n;
}

static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return EVCS_EINVAL;
	}
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);
	while (b) {
		size_t r = fread(b + n, 1, cap - n - 1, f);
		n += r;
		if (n < cap - 1)
			break;
		cap *= 2;
		char *nb = realloc(b, cap);
		if (!nb)
			free(b);
		b = nb;
	}
	int ferr = ferror(f);
	fclose(f);
	if (!b || ferr) {
		free(b);
		snprintf(err, errlen, "cannot read %s", path);
		return EVCS_EINVAL;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

void evcs_dbm_sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

/* A line starting with DELIMITER (case-insensitive, after blanks) is a client directive. */
int evcs_dbm_has_delimiter(const char *s)
{
	const char *p = s;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "DELIMITER", 9) == 0 && (p[9] == ' ' || p[9] == '\t'))
			return 1;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return 0;
}

int64_t evcs_dbm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int evcs_dbm_exec(MYSQL *m, const char *sql, char *err, size_t errlen)
{
	if (mysql_query(m, sql) != 0) {
		snprintf(err, errlen, "%s (SQL: %.80s)", mysql_error(m), sql);
		return EVCS_ERR;
	}
	/* drain any result so the connection stays usable */
	do {
		MYSQL_RES *r = mysql_store_result(m);
		if (r)
			mysql_free_result(r);
	} while (mysql_next_result(m) == 0);
	return 0;
}

/* One integer from a single-row, single-column query; *out = -1 when the value is NULL. */
int evcs_dbm_query_int(MYSQL *m, const char *sql, long long *out, char *err, size_t errlen)
{
	if (mysql_query(m, sql) != 0) {
		snprintf(err, errlen, "%s (SQL: %.80s)", mysql_error(m), sql);
		return EVCS_ERR;
	}
	MYSQL_RES *r = mysql_store_result(m);
	if (!r) {
		snprintf(err, errlen, "no result for: %.80s", sql);
		return EVCS_ERR;
	}
	MYSQL_ROW row = mysql_fetch_row(r);
	*out = (row && row[0]) ? strtoll(row[0], NULL, 10) : -1;
	mysql_free_result(r);
	while (mysql_next_result(m) == 0) {
		MYSQL_RES *x = mysql_store_result(m);
		if (x)
			mysql_free_result(x);
	}
	return 0;
}

static const char create_version_table[] =
	"CREATE TABLE IF NOT EXISTS schema_version ("
	" version INT NOT NULL PRIMARY KEY,"
	" name VARCHAR(128) NOT NULL,"
	" checksum CHAR(64) CHARACTER SET ascii NOT NULL COMMENT 'sha256 of the file as applied',"
	" state ENUM('applying','applied') NOT NULL,"
	" started_ms BIGINT NOT NULL,"
	" applied_ms BIGINT NULL,"
	" error VARCHAR(512) NULL"
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci";

/* Reads the database version: *applied = highest applied (0 if none or no table),
 * *applying = a version stuck in 'applying' or 0. */
static int db_version(MYSQL *m, int *applied, int *applying, char *err, size_t errlen)
{
	long long v;
	int rc = evcs_dbm_query_int(m,
			   "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
			   " AND TABLE_NAME = 'schema_version'",
			   &v, err, errlen);
	if (rc)
		return rc;
	*applied = *applying = 0;
	if (v <= 0)
		return 0;
	if ((rc = evcs_dbm_query_int(m, "SELECT MAX(version) FROM schema_version WHERE state = 'applied'", &v,
			    err, errlen)))
		return rc;
	*applied = v < 0 ? 0 : (int)v;
	if ((rc = evcs_dbm_query_int(m, "SELECT MIN(version) FROM schema_version WHERE state = 'applying'", &v,
			    err, errlen)))
		return rc;
	*applying = v < 0 ? 0 : (int)v;
	return 0;
}

/* Sends one file and walks every result; on error reports which statement (1-based) failed. */
int evcs_dbm_apply(MYSQL *m, const char *fname, const char *sql, size_t len, char *err,
		      size_t errlen)
{
	int idx = 1;
	if (mysql_real_query(m, sql, (unsigned long)len) != 0) {
		snprintf(err, errlen, "%s: statement %d: %s", fname, idx, mysql_error(m));
		return EVCS_ERR;
	}
	for (;;) {
		MYSQL_RES *r = mysql_store_result(m);
		if (r)
			mysql_free_result(r);
		else if (mysql_field_count(m) != 0) {
			snprintf(err, errlen, "%s: statement %d: %s", fname, idx, mysql_error(m));
			return EVCS_ERR;
		}
		int nr = mysql_next_result(m);
		if (nr == -1)
			return 0;
		idx++;
		if (nr > 0) {
			snprintf(err, errlen, "%s: statement %d: %s", fname, idx, mysql_error(m));
			return EVCS_ERR;
		}
	}
}

static void record_error(MYSQL *m, int version, const char *msg)
{
	char esc[1100];
	char sql[1300];
	size_t ml = strlen(msg);
	if (ml > 500)
		ml = 500;
	mysql_real_escape_string(m, esc, msg, (unsigned long)ml);
	snprintf(sql, sizeof sql, "UPDATE schema_version SET error = '%s' WHERE version = %d", esc,
		 version);
	if (mysql_query(m, sql) != 0)
		evcs_warn("db", "could not record migration error: %s", mysql_error(m));
}

int evcs_db_migrate(const evcs_db_config_t *cfg, const char *schema_dir, int *from, int *to,
		    char *err, size_t errlen)
{
	char dummy[8];
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	struct mfile *files = NULL;
	size_t nfiles = 0;
	int rc = list_files(schema_dir, &files, &nfiles, err, errlen);
	if (rc)
		return rc;
	MYSQL *m = evcs_db_connect_raw(cfg, 1, err, errlen);
	if (!m) {
		free(files);
		return EVCS_EUNAVAIL;
	}
	long long locked = 0;
	int applied = 0, applying = 0;
	rc = evcs_dbm_query_int(m, "SELECT GET_LOCK('evcs_migrate', 60)", &locked, err, errlen);
	if (rc == 0 && locked != 1) {
		snprintf(err, errlen, "another migration holds the lock evcs_migrate");
		rc = EVCS_EBUSY;
	}
	if (rc)
		goto out;
	if ((rc = evcs_dbm_exec(m, create_version_table, err, errlen)))
		goto out_unlock;
	if ((rc = db_version(m, &applied, &applying, err, errlen)))
		goto out_unlock;
	if (from)
		*from = applied;
	if (to)
		*to = applied;
	if (applying) {
		snprintf(err, errlen,
			 "migration %03d did not finish earlier (schema_version.state = 'applying'); "
			 "repair the database by hand, delete that row and run --migrate again",
			 applying);
		rc = EVCS_EINVAL;
		goto out_unlock;
	}
	if (applied > (int)nfiles) {
		snprintf(err, errlen,
			 "database schema version %d is newer than the newest migration in %s (%zu); "
			 "this evcsd is too old for the database",
			 applied, schema_dir, nfiles);
		rc = EVCS_ENOTSUP;
		goto out_unlock;
	}
	for (size_t i = 0; i < nfiles; i++) {
		char path[4096], sum[65], sql[512];
		char *body = NULL;
		size_t blen = 0;
		snprintf(path, sizeof path, "%s/%s", schema_dir, files[i].name);
		if ((rc = read_file(path, &body, &blen, err, errlen)))
			goto out_unlock;
		evcs_dbm_sha256_hex(body, blen, sum);
		if (files[i].version <= applied) {
			/* Applied files must not change; say so loudly but do not refuse. */
			snprintf(sql, sizeof sql, "SELECT checksum = '%s' FROM schema_version WHERE version = %d",
				 sum, files[i].version);
			long long same = 1;
			if (evcs_dbm_query_int(m, sql, &same, err, errlen) == 0 && same == 0)
				evcs_warn("db", "migration %s changed after it was applied (checksum differs)",
					  files[i].name);
			err[0] = '\0';
			free(body);
			continue;
		}
		if (evcs_dbm_has_delimiter(body)) {
			snprintf(err, errlen, "%s: DELIMITER is a client command; write plain statements", path);
			free(body);
			rc = EVCS_EINVAL;
			goto out_unlock;
		}
		snprintf(sql, sizeof sql,
			 "INSERT INTO schema_version (version, name, checksum, state, started_ms) "
			 "VALUES (%d, '%s', '%s', 'applying', %lld)",
			 files[i].version, files[i].name, sum, (long long)evcs_dbm_now_ms());
		if ((rc = evcs_dbm_exec(m, sql, err, errlen))) {
			free(body);
			goto out_unlock;
		}
		evcs_notice("db", "applying migration %s", files[i].name);
		rc = evcs_dbm_apply(m, files[i].name, body, blen, err, errlen);
		free(body);
		if (rc) {
			evcs_err("db", "migration failed: %s", err);
			/* the failed batch may have left an open transaction */
			mysql_query(m, "ROLLBACK");
			record_error(m, files[i].version, err);
			goto out_unlock;
		}
		snprintf(sql, sizeof sql,
			 "UPDATE schema_version SET state = 'applied', applied_ms = %lld WHERE version = %d",
			 (long long)evcs_dbm_now_ms(), files[i].version);
		if ((rc = evcs_dbm_exec(m, sql, err, errlen)))
			goto out_unlock;
		applied = files[i].version;
		if (to)
			*to = applied;
	}
	rc = 0;
out_unlock:
	mysql_query(m, "DO RELEASE_LOCK('evcs_migrate')");
out:
	mysql_close(m);
	free(files);
	return rc;
}

int evcs_db_schema_check(const evcs_db_config_t *cfg, const char *schema_dir, int *db_version_out,
			 int *code_version, char *err, size_t errlen)
{
	char dummy[8];
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	int code = EVCS_DB_SCHEMA_VERSION;
	if (schema_dir) {
		code = evcs_db_schema_files_version(schema_dir, err, errlen);
		if (code < 0)
			return code;
	}
	if (code_version)
		*code_version = code;
	MYSQL *m = evcs_db_connect_raw(cfg, 0, err, errlen);
	if (!m)
		return EVCS_EUNAVAIL;
	int applied = 0, applying = 0;
	int rc = db_version(m, &applied, &applying, err, errlen);
	mysql_close(m);
	if (rc)
		return rc;
	if (db_version_out)
		*db_version_out = applied;
	if (applying) {
		snprintf(err, errlen,
			 "database schema: migration %03d is unfinished ('applying'); repair it and run "
			 "evcsd --migrate",
			 applying);
		return EVCS_EINVAL;
	}
	if (applied > code) {
		snprintf(err, errlen,
			 "database schema version %d is newer than this evcsd knows (%d); refusing to run "
			 "against it: upgrade evcsd",
			 applied, code);
		return EVCS_ENOTSUP;
	}
	if (applied < code) {
		snprintf(err, errlen,
			 "database schema version %d is older than this evcsd needs (%d): run evcsd --migrate",
			 applied, code);
		return EVCS_EINVAL;
	}
	snprintf(err, errlen, "database schema version %d is current", applied);
	return 0;
}
