/*
 * db_plugin_migrate.c: plugins' own schema migrations and their start-up check (contract in
 * db.h, "plugin migrations").
 *
 * Blocking, own connection, start-up only (`evcsd --migrate`, and before a plugin's init while
 * the loop is not running yet). A plugin's migrations are compiled into its descriptor; each is
 * sent as one multi-statement batch like a core file (db_migrate.c) and recorded in
 * plugin_schema_version under the plugin's name: 'applying' before, 'applied' after, and a
 * leftover 'applying' row stops later runs. Runs take GET_LOCK('evcs_migrate') like the core's.
 *
 * The prefix rule is checked on the SQL text before anything is sent: a small lexer (comments,
 * quotes and backticks understood; MariaDB's executable comments are read as code) splits the
 * batch at top-level ';' and looks at the statements that name tables. It is a guard against a
 * plugin touching the core's tables by mistake, not a SQL parser.
 */
#include "db.h"
#include "db_internal.h"
#include "log.h"

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PLUGIN_MIGRATIONS 999

/* ---- lexer ------------------------------------------------------------------------------ */
enum tok_kind { T_END, T_WORD, T_QUOTED, T_STRING, T_PUNCT };

struct tok {
	int kind;
	const char *s; /* T_QUOTED: inside the backticks */
	size_t n;
};

struct lexer {
	const char *p;
	int exec_comment; /* inside a MariaDB executable comment, whose body is code */
};

static int word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

static void next_tok(struct lexer *lx, struct tok *t)
{
	const char *p = lx->p;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f')
			p++;
		if (p[0] == '-' && p[1] == '-' && (p[2] == ' ' || p[2] == '\t' || p[2] == '\n' ||
						   p[2] == '\r' || p[2] == '\0')) {
			while (*p && *p != '\n')
				p++;
			continue;
		}
		if (*p == '#') {
			while (*p && *p != '\n')
				p++;
			continue;
		}
		if (p[0] == '/' && p[1] == '*') {
			if (p[2] == '!' || (p[2] == 'M' && p[3] == '!')) {
				p += p[2] == '!' ? 3 : 4;
				while (*p >= '0' && *p <= '9')
					p++;
				lx->exec_comment++;
				continue;
			}
			const char *e = strstr(p + 2, "*/");
			p = e ? e + 2 : p + strlen(p);
			continue;
		}
		if (lx->exec_comment && p[0] == '*' && p[1] == '/') {
			p += 2;
			lx->exec_comment--;
			continue;
		}
		break;
	}
	t->s = p;
	t->n = 0;
	if (!*p) {
		t->kind = T_END;
	} else if (*p == '\'' || *p == '"') {
		char q = *p++;
		while (*p && !(*p == q && p[1] != q)) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == q) /* doubled quote */
				p++;
			p++;
		}
		if (*p)
			p++;
		t->kind = T_STRING;
	} else if (*p == '`') {
		t->s = ++p;
		while (*p && !(*p == '`' && p[1] != '`'))
			p += *p == '`' ? 2 : 1;
		t->n = (size_t)(p - t->s);
		if (*p)
			p++;
		t->kind = T_QUOTED;
	} else if (word_char((unsigned char)*p)) {
		while (word_char((unsigned char)*p))
			p++;
		t->n = (size_t)(p - t->s);
		t->kind = T_WORD;
	} else {
		t->n = 1;
		p++;
		t->kind = T_PUNCT;
	}
	lx->p = p;
}

/* ---- statements ---------------------------------------------------------------------- */
struct stmt {
	struct tok *t;
	size_t n, cap;
};

static int kw(const struct stmt *s, size_t i, const char *word)
{
	return i < s->n && s->t[i].kind == T_WORD && strlen(word) == s->t[i].n &&
	       strncasecmp(s->t[i].s, word, s->t[i].n) == 0;
}

static int punct(const struct stmt *s, size_t i, char c)
{
	return i < s->n && s->t[i].kind == T_PUNCT && s->t[i].s[0] == c;
}

/* Reads the next statement's tokens (up to a top-level ';'). 0 = no more statements. */
static int read_stmt(struct lexer *lx, struct stmt *s)
{
	s->n = 0;
	for (;;) {
		struct tok t;
		next_tok(lx, &t);
		if (t.kind == T_END)
			return s->n > 0 ? 1 : 0;
		if (t.kind == T_PUNCT && t.s[0] == ';') {
			if (s->n)
				return 1;
			continue;
		}
		if (s->n == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 64;
			struct tok *nt = realloc(s->t, nc * sizeof *nt);
			if (!nt)
				return -1;
			s->t = nt;
			s->cap = nc;
		}
		s->t[s->n++] = t;
	}
}

struct prefix_ctx {
	const char *plugin;
	const char *mig;
	char *err;
	size_t errlen;
};

/* The (possibly qualified) name at *i: checks its last part against the prefix and advances
 * *i past it. 0 ok, EVCS_EINVAL with err set. */
static int check_name(const struct stmt *s, size_t *i, const char *what, struct prefix_ctx *c)
{
	if (*i >= s->n || (s->t[*i].kind != T_WORD && s->t[*i].kind != T_QUOTED)) {
		snprintf(c->err, c->errlen, "plugin %s: migration %s: %s without a table name", c->plugin,
			 c->mig, what);
		return EVCS_EINVAL;
	}
	const struct tok *name = &s->t[*i];
	(*i)++;
	while (punct(s, *i, '.') && *i + 1 < s->n &&
	       (s->t[*i + 1].kind == T_WORD || s->t[*i + 1].kind == T_QUOTED)) {
		name = &s->t[*i + 1];
		*i += 2;
	}
	size_t pl = strlen(c->plugin);
	if (name->n > pl + 1 && strncasecmp(name->s, c->plugin, pl) == 0 && name->s[pl] == '_')
		return 0;
	snprintf(c->err, c->errlen,
		 "plugin %s: migration %s: %s `%.*s` refused: a plugin's tables must be named %s_...",
		 c->plugin, c->mig, what, (int)(name->n > 64 ? 64 : name->n), name->s, c->plugin);
	return EVCS_EINVAL;
}

static void skip_if_exists(const struct stmt *s, size_t *i)
{
	if (kw(s, *i, "IF") && kw(s, *i + 1, "NOT") && kw(s, *i + 2, "EXISTS"))
		*i += 3;
	else if (kw(s, *i, "IF") && kw(s, *i + 1, "EXISTS"))
		*i += 2;
}

/* Index of the first token after `from` that is the keyword `word`, or s->n. */
static size_t find_kw(const struct stmt *s, size_t from, const char *word)
{
	for (size_t i = from; i < s->n; i++)
		if (kw(s, i, word))
			return i;
	return s->n;
}

/* Checks one statement of a plugin migration against the prefix rule. */
static int check_stmt(const struct stmt *s, struct prefix_ctx *c)
{
	size_t i = 1;
	if (kw(s, 0, "CREATE")) {
		/* CREATE [OR REPLACE] [TEMPORARY] [DEFINER = ...] [UNIQUE ...] <object> */
		for (; i < s->n && i < 16; i++) {
			if (kw(s, i, "TABLE") || kw(s, i, "SEQUENCE") || kw(s, i, "VIEW")) {
				const char *what = kw(s, i, "TABLE") ? "CREATE TABLE"
						   : kw(s, i, "VIEW") ? "CREATE VIEW" : "CREATE SEQUENCE";
				i++;
				skip_if_exists(s, &i);
				return check_name(s, &i, what, c);
			}
			if (kw(s, i, "INDEX") || kw(s, i, "TRIGGER")) {
				const char *what = kw(s, i, "INDEX") ? "CREATE INDEX ... ON" : "CREATE TRIGGER ... ON";
				size_t on = find_kw(s, i + 1, "ON");
				on++;
				return check_name(s, &on, what, c);
			}
			if (kw(s, i, "DATABASE") || kw(s, i, "SCHEMA")) {
				snprintf(c->err, c->errlen,
					 "plugin %s: migration %s: CREATE DATABASE refused: a plugin keeps its "
					 "tables in the evcs database", c->plugin, c->mig);
				return EVCS_EINVAL;
			}
		}
		return 0;
	}
	if (kw(s, 0, "ALTER")) {
		for (; i < s->n && i < 4; i++) {
			if (kw(s, i, "DATABASE") || kw(s, i, "SCHEMA")) {
				snprintf(c->err, c->errlen, "plugin %s: migration %s: ALTER DATABASE refused",
					 c->plugin, c->mig);
				return EVCS_EINVAL;
			}
			if (kw(s, i, "TABLE") || kw(s, i, "VIEW") || kw(s, i, "SEQUENCE"))
				break;
		}
		if (i >= s->n || i >= 4)
			return 0;
		int table = kw(s, i, "TABLE");
		i++;
		skip_if_exists(s, &i);
		int rc = check_name(s, &i, table ? "ALTER TABLE" : "ALTER", c);
		/* ALTER TABLE x RENAME [TO|AS] y (not RENAME COLUMN/INDEX/KEY) */
		for (; rc == 0 && i < s->n; i++) {
			if (!kw(s, i, "RENAME") || kw(s, i + 1, "COLUMN") || kw(s, i + 1, "INDEX") ||
			    kw(s, i + 1, "KEY"))
				continue;
			size_t k = i + 1;
			if (kw(s, k, "TO") || kw(s, k, "AS"))
				k++;
			rc = check_name(s, &k, "ALTER TABLE ... RENAME TO", c);
			i = k;
		}
		return rc;
	}
	if (kw(s, 0, "DROP")) {
		if (kw(s, i, "TEMPORARY"))
			i++;
		if (kw(s, i, "DATABASE") || kw(s, i, "SCHEMA")) {
			snprintf(c->err, c->errlen, "plugin %s: migration %s: DROP DATABASE refused",
				 c->plugin, c->mig);
			return EVCS_EINVAL;
		}
		if (kw(s, i, "INDEX")) {
			size_t on = find_kw(s, i + 1, "ON");
			if (on >= s->n)
				return 0; /* ALTER-less DROP INDEX needs ON; let the server complain */
			on++;
			return check_name(s, &on, "DROP INDEX ... ON", c);
		}
		if (!kw(s, i, "TABLE") && !kw(s, i, "TABLES") && !kw(s, i, "VIEW") &&
		    !kw(s, i, "SEQUENCE"))
			return 0;
		const char *what = kw(s, i, "VIEW") ? "DROP VIEW" : kw(s, i, "SEQUENCE") ? "DROP SEQUENCE"
											: "DROP TABLE";
		i++;
		skip_if_exists(s, &i);
		for (;;) {
			int rc = check_name(s, &i, what, c);
			if (rc || !punct(s, i, ','))
				return rc;
			i++;
		}
	}
	if (kw(s, 0, "RENAME") && (kw(s, 1, "TABLE") || kw(s, 1, "TABLES"))) {
		/* RENAME TABLE [IF EXISTS] old [WAIT n | NOWAIT] TO new [, old TO new ...]: only the
		 * new names need the prefix (a plugin may adopt its legacy tables) */
		i = 2;
		for (;;) {
			size_t to = find_kw(s, i, "TO");
			if (to >= s->n) {
				snprintf(c->err, c->errlen, "plugin %s: migration %s: RENAME TABLE without TO",
					 c->plugin, c->mig);
				return EVCS_EINVAL;
			}
			i = to + 1;
			int rc = check_name(s, &i, "RENAME TABLE ... TO", c);
			if (rc || !punct(s, i, ','))
				return rc;
			i++;
		}
	}
	if (kw(s, 0, "TRUNCATE")) {
		if (kw(s, i, "TABLE"))
			i++;
		return check_name(s, &i, "TRUNCATE TABLE", c);
	}
	return 0;
}

static int check_prefixes(const char *plugin, const evcs_migration_t *m, char *err, size_t errlen)
{
	struct prefix_ctx c = {plugin, m->name, err, errlen};
	struct lexer lx = {m->sql, 0};
	struct stmt s = {NULL, 0, 0};
	int rc = 0, more;
	while (rc == 0 && (more = read_stmt(&lx, &s)) != 0) {
		if (more < 0) {
			snprintf(err, errlen, "out of memory");
			rc = EVCS_ENOMEM;
			break;
		}
		rc = check_stmt(&s, &c);
	}
	free(s.t);
	return rc;
}

static int valid_plugin_name(const char *n)
{
	if (!n || !*n || strlen(n) > 64)
		return 0;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
			return 0;
	return 1;
}

int evcs_db_plugin_migrations_valid(const char *plugin, const evcs_migration_t *migs, char *err,
				    size_t errlen)
{
	if (!valid_plugin_name(plugin)) {
		snprintf(err, errlen, "plugin '%s': a plugin with migrations needs a name of [a-z0-9_]",
			 plugin ? plugin : "(null)");
		return EVCS_EINVAL;
	}
	if (!migs)
		return 0;
	int n = 0;
	for (; migs[n].version != 0; n++) {
		const evcs_migration_t *m = &migs[n];
		if (n >= MAX_PLUGIN_MIGRATIONS) {
			snprintf(err, errlen, "plugin %s: more than %d migrations (missing {0} at the end?)",
				 plugin, MAX_PLUGIN_MIGRATIONS);
			return EVCS_EINVAL;
		}
		if (m->version != (uint32_t)n + 1) {
			snprintf(err, errlen,
				 "plugin %s: migrations must be numbered 1, 2, 3... without gaps: expected "
				 "%03d, found %03u (%s)",
				 plugin, n + 1, m->version, m->name ? m->name : "no name");
			return EVCS_EINVAL;
		}
		if (!m->name || !*m->name || strlen(m->name) > 128 || !m->sql || !*m->sql) {
			snprintf(err, errlen, "plugin %s: migration %03u has no name or no SQL", plugin,
				 m->version);
			return EVCS_EINVAL;
		}
		if (evcs_dbm_has_delimiter(m->sql)) {
			snprintf(err, errlen,
				 "plugin %s: migration %s: DELIMITER is a client command; write plain "
				 "statements", plugin, m->name);
			return EVCS_EINVAL;
		}
		int rc = check_prefixes(plugin, m, err, errlen);
		if (rc)
			return rc;
	}
	return n;
}

/* ---- version rows ------------------------------------------------------------------------ */
/* *applied = highest applied version (0 if none or no table), *applying = lowest 'applying'. */
static int plugin_version(MYSQL *m, const char *plugin, int *applied, int *applying, char *err,
			  size_t errlen)
{
	long long v;
	char sql[512];
	*applied = *applying = 0;
	int rc = evcs_dbm_query_int(m,
				    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
				    "DATABASE() AND TABLE_NAME = 'plugin_schema_version'",
				    &v, err, errlen);
	if (rc || v <= 0)
		return rc;
	/* plugin names are [a-z0-9_] (checked): safe to write inline */
	snprintf(sql, sizeof sql,
		 "SELECT MAX(version) FROM plugin_schema_version WHERE plugin = '%s' AND status = "
		 "'applied'", plugin);
	if ((rc = evcs_dbm_query_int(m, sql, &v, err, errlen)))
		return rc;
	*applied = v < 0 ? 0 : (int)v;
	snprintf(sql, sizeof sql,
		 "SELECT MIN(version) FROM plugin_schema_version WHERE plugin = '%s' AND status = "
		 "'applying'", plugin);
	if ((rc = evcs_dbm_query_int(m, sql, &v, err, errlen)))
		return rc;
	*applying = v < 0 ? 0 : (int)v;
	return 0;
}

static void record_error(MYSQL *m, const char *plugin, uint32_t version, const char *msg)
{
	char esc[1100], sql[1400];
	size_t ml = strlen(msg);
	if (ml > 500)
		ml = 500;
	mysql_real_escape_string(m, esc, msg, (unsigned long)ml);
	snprintf(sql, sizeof sql,
		 "UPDATE plugin_schema_version SET error = '%s' WHERE plugin = '%s' AND version = %u",
		 esc, plugin, version);
	if (mysql_query(m, sql) != 0)
		evcs_warn("db", "could not record plugin migration error: %s", mysql_error(m));
}

static int apply_one(MYSQL *m, const char *plugin, const evcs_migration_t *mg, char *err,
		     size_t errlen)
{
	char sum[65], ename[300], sql[800];
	size_t len = strlen(mg->sql);
	evcs_dbm_sha256_hex(mg->sql, len, sum);
	mysql_real_escape_string(m, ename, mg->name, (unsigned long)strlen(mg->name));
	snprintf(sql, sizeof sql,
		 "INSERT INTO plugin_schema_version (plugin, version, name, checksum, status, "
		 "started_ms) VALUES ('%s', %u, '%s', '%s', 'applying', %lld)",
		 plugin, mg->version, ename, sum, (long long)evcs_dbm_now_ms());
	int rc = evcs_dbm_exec(m, sql, err, errlen);
	if (rc)
		return rc;
	evcs_notice("db", "plugin %s: applying migration %s", plugin, mg->name);
	char label[200];
	snprintf(label, sizeof label, "plugin %s: migration %s", plugin, mg->name);
	rc = evcs_dbm_apply(m, label, mg->sql, len, err, errlen);
	if (rc) {
		evcs_err("db", "migration failed: %s", err);
		mysql_query(m, "ROLLBACK");
		record_error(m, plugin, mg->version, err);
		return rc;
	}
	snprintf(sql, sizeof sql,
		 "UPDATE plugin_schema_version SET status = 'applied', applied_ms = %lld WHERE plugin "
		 "= '%s' AND version = %u",
		 (long long)evcs_dbm_now_ms(), plugin, mg->version);
	return evcs_dbm_exec(m, sql, err, errlen);
}

int evcs_db_migrate_plugin(const evcs_db_config_t *cfg, const char *plugin,
			   const evcs_migration_t *migs, int *from, int *to, char *err,
			   size_t errlen)
{
	char dummy[8];
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	int n = evcs_db_plugin_migrations_valid(plugin, migs, err, errlen);
	if (n < 0)
		return n;
	if (from)
		*from = 0;
	if (to)
		*to = 0;
	if (n == 0)
		return 0;
	MYSQL *m = evcs_db_connect_raw(cfg, 1, err, errlen);
	if (!m)
		return EVCS_EUNAVAIL;
	long long locked = 0, present = 0;
	int applied = 0, applying = 0;
	int rc = evcs_dbm_query_int(m, "SELECT GET_LOCK('evcs_migrate', 60)", &locked, err, errlen);
	if (rc == 0 && locked != 1) {
		snprintf(err, errlen, "another migration holds the lock evcs_migrate");
		rc = EVCS_EBUSY;
	}
	if (rc)
		goto out;
	rc = evcs_dbm_query_int(m,
				"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
				"DATABASE() AND TABLE_NAME = 'plugin_schema_version'",
				&present, err, errlen);
	if (rc == 0 && present <= 0) {
		snprintf(err, errlen,
			 "plugin %s: the database has no plugin_schema_version table (core migration "
			 "008): apply the core's migrations first",
			 plugin);
		rc = EVCS_EINVAL;
	}
	if (rc || (rc = plugin_version(m, plugin, &applied, &applying, err, errlen)))
		goto out_unlock;
	if (from)
		*from = applied;
	if (to)
		*to = applied;
	if (applying) {
		snprintf(err, errlen,
			 "plugin %s: migration %03d did not finish earlier (plugin_schema_version.status "
			 "= 'applying'); repair the database by hand, delete that row and run --migrate "
			 "again",
			 plugin, applying);
		rc = EVCS_EINVAL;
		goto out_unlock;
	}
	if (applied > n) {
		snprintf(err, errlen,
			 "plugin %s: schema version %d in the database is newer than the plugin's %d: "
			 "the plugin is older than its data (install the version that applied it)",
			 plugin, applied, n);
		rc = EVCS_ENOTSUP;
		goto out_unlock;
	}
	for (int i = 0; i < n; i++) {
		const evcs_migration_t *mg = &migs[i];
		if ((int)mg->version <= applied) {
			char sum[65], sql[400];
			long long same = 1;
			evcs_dbm_sha256_hex(mg->sql, strlen(mg->sql), sum);
			snprintf(sql, sizeof sql,
				 "SELECT checksum = '%s' FROM plugin_schema_version WHERE plugin = '%s' "
				 "AND version = %u",
				 sum, plugin, mg->version);
			if (evcs_dbm_query_int(m, sql, &same, err, errlen) == 0 && same == 0)
				evcs_warn("db", "plugin %s: migration %s changed after it was applied "
						"(checksum differs)", plugin, mg->name);
			err[0] = '\0';
			continue;
		}
		if ((rc = apply_one(m, plugin, mg, err, errlen)))
			goto out_unlock;
		applied = (int)mg->version;
		if (to)
			*to = applied;
	}
	rc = 0;
out_unlock:
	mysql_query(m, "DO RELEASE_LOCK('evcs_migrate')");
out:
	mysql_close(m);
	return rc;
}

int evcs_db_plugin_schema_check(const evcs_db_config_t *cfg, const char *plugin,
				const evcs_migration_t *migs, int *db_version, int *code_version,
				char *err, size_t errlen)
{
	char dummy[8];
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	int n = evcs_db_plugin_migrations_valid(plugin, migs, err, errlen);
	if (n < 0)
		return n;
	if (code_version)
		*code_version = n;
	MYSQL *m = evcs_db_connect_raw(cfg, 0, err, errlen);
	if (!m)
		return EVCS_EUNAVAIL;
	int applied = 0, applying = 0;
	int rc = plugin_version(m, plugin, &applied, &applying, err, errlen);
	mysql_close(m);
	if (rc)
		return rc;
	if (db_version)
		*db_version = applied;
	if (applying) {
		snprintf(err, errlen,
			 "plugin %s: migration %03d is unfinished ('applying'); repair it and run "
			 "`evcsd --migrate`",
			 plugin, applying);
		return EVCS_EINVAL;
	}
	if (applied > n) {
		snprintf(err, errlen,
			 "plugin %s: schema version %d in the database is newer than the plugin's %d: "
			 "the plugin is older than its data (install the version that applied it)",
			 plugin, applied, n);
		return EVCS_ENOTSUP;
	}
	if (applied < n) {
		snprintf(err, errlen, "plugin %s: schema version %d, plugin needs %d: run `evcsd --migrate`",
			 plugin, applied, n);
		return EVCS_EINVAL;
	}
	snprintf(err, errlen, "plugin %s: schema version %d is current", plugin, applied);
	return 0;
}
