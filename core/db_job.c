/*
 * db_job.c: building and submitting jobs (contract in db.h): parameter copies, the placeholder
 * scan, the one place tenant isolation is enforced (job_add), single statements and
 * transactions. Loop thread only.
 */
#include "db_internal.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <errmsg.h>
#include <event2/event.h>
#include <limits.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- job building ---------------------------------------------------------------- */
void dbi_params_free(evcs_db_param_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].type == EVCS_DB_T_STR)
			free((char *)p[i].s);
	free(p);
}

void dbi_job_free(struct job *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->nstmts; i++) {
		free(j->stmts[i].sql);
		dbi_params_free(j->stmts[i].params, j->stmts[i].nparams);
	}
	free(j->stmts);
	if (j->res) {
		for (size_t i = 0; i < j->nres; i++)
			dbi_result_clear(&j->res[i]);
		free(j->res);
	}
	free(j);
}

/* Deep copy of the caller's values (strings duplicated, NULL string -> SQL NULL). */
int dbi_params_copy(const evcs_db_param_t *in, size_t n, evcs_db_param_t **out)
{
	evcs_db_param_t *p = calloc(n ? n : 1, sizeof *p);
	if (!p)
		return EVCS_ENOMEM;
	for (size_t k = 0; k < n; k++) {
		p[k] = in[k];
		if (in[k].type == EVCS_DB_T_STR) {
			if (!in[k].s) {
				p[k] = EVCS_DB_NULL;
				continue;
			}
			size_t len = in[k].len == SIZE_MAX ? strlen(in[k].s) : in[k].len;
			char *c = malloc(len + 1);
			if (!c) {
				p[k].type = EVCS_DB_T_NULL;
				dbi_params_free(p, k);
				return EVCS_ENOMEM;
			}
			memcpy(c, in[k].s, len);
			c[len] = '\0';
			p[k].s = c;
			p[k].len = len;
		} else if (in[k].type != EVCS_DB_T_INT && in[k].type != EVCS_DB_T_NULL &&
			   in[k].type != EVCS_DB_T_REFID) {
			p[k].type = EVCS_DB_T_NULL;
			dbi_params_free(p, k + 1);
			return EVCS_EINVAL;
		}
	}
	*out = p;
	return 0;
}

static int ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$';
}

static int ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Calls fn for every '?' placeholder outside quotes and comments, in order. Returns the
 * number of placeholders, or -1 for an unterminated quote or comment. */
static long scan_placeholders(const char *sql, void (*fn)(const char *sql, const char *q, long i, void *ud),
			      void *ud)
{
	long n = 0;
	for (const char *p = sql; *p; p++) {
		if (*p == '\'' || *p == '"' || *p == '`') {
			char q = *p;
			for (p++; *p && *p != q; p++)
				if (*p == '\\' && p[1])
					p++;
			if (!*p)
				return -1;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
			if (!*p)
				break;
		} else if (p[0] == '/' && p[1] == '*') {
			const char *e = strstr(p + 2, "*/");
			if (!e)
				return -1;
			p = e + 1;
		} else if (*p == '?') {
			if (fn)
				fn(sql, p, n, ud);
			n++;
		}
	}
	return n;
}

/* Reads the identifier that ends just before `end` (skipping blanks), unquoting backticks
 * and dropping any qualifier ("s.`tenant_id`" -> "tenant_id"). Returns its start or NULL. */
static const char *ident_before(const char *sql, const char *end, char *buf, size_t buflen)
{
	const char *p = end;
	while (p > sql && ws(p[-1]))
		p--;
	const char *e = p, *s;
	if (p > sql && p[-1] == '`') {
		e = p - 1;
		s = e;
		while (s > sql && s[-1] != '`')
			s--;
		if (s == sql)
			return NULL;
		p = s - 1;
	} else {
		s = p;
		while (s > sql && ident_char(s[-1]))
			s--;
		p = s;
	}
	size_t len = (size_t)(e - s);
	if (len == 0 || len >= buflen)
		return NULL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return p;
}

/* Is the placeholder at q (number i) a tenant marker? Either the right-hand side of
 * `[qualifier.]tenant_id = ?` (not <=, >=, !=, <=>, :=), or, for the first placeholder only,
 * the first VALUES slot of an INSERT whose first listed column is tenant_id. */
static int is_marker(const char *sql, const char *q, long i)
{
	const char *p = q;
	while (p > sql && ws(p[-1]))
		p--;
	char id[64];
	if (p > sql && p[-1] == '=') {
		p--;
		if (p > sql && strchr("<>!:", p[-1]))
			return 0;
		return ident_before(sql, p, id, sizeof id) && strcasecmp(id, "tenant_id") == 0;
	}
	if (i == 0 && p > sql && p[-1] == '(') {
		const char *kw = ident_before(sql, p - 1, id, sizeof id);
		if (!kw || (strcasecmp(id, "VALUES") != 0 && strcasecmp(id, "VALUE") != 0))
			return 0;
		const char *open = memchr(sql, '(', (size_t)(kw - sql));
		if (!open)
			return 0;
		const char *c = open + 1;
		while (ws(*c))
			c++;
		int quoted = *c == '`';
		if (quoted)
			c++;
		if (strncasecmp(c, "tenant_id", 9) != 0)
			return 0;
		c += 9;
		if (quoted && *c++ != '`')
			return 0;
		while (ws(*c))
			c++;
		return *c == ',' || *c == ')';
	}
	return 0;
}

struct markers {
	unsigned char *flag; /* per placeholder: 1 = tenant marker */
	long n;
	long nmarkers;
};

static void mark_cb(const char *sql, const char *q, long i, void *ud)
{
	struct markers *m = ud;
	m->flag[i] = (unsigned char)is_marker(sql, q, i);
	m->nmarkers += m->flag[i];
}

int dbi_is_select(const char *sql)
{
	while (ws(*sql) || *sql == '(')
		sql++;
	return strncasecmp(sql, "SELECT", 6) == 0 && !ident_char(sql[6]);
}

struct job *dbi_job_new(void)
{
	return calloc(1, sizeof(struct job));
}

/* The single entry for adding a statement, and the one place tenant isolation is enforced
 * (db.h): tenant_id < 0 means platform scope. For a tenant scope the SQL must hold at least one
 * `tenant_id = ?` marker; the tenant is bound at every marker (so for SELECT, DELETE and
 * INSERT ... SET it is the first parameter) and the caller's values fill the other
 * placeholders in order. */
static int job_add(struct job *j, int64_t tenant_id, const char *sql, const evcs_db_param_t *params,
		   size_t nparams, unsigned flags)
{
	if (!sql || (nparams && !params))
		return EVCS_EINVAL;
	long nph = scan_placeholders(sql, NULL, NULL);
	if (nph < 0) {
		evcs_err(COMP, "unterminated quote or comment in SQL: %.120s", sql);
		return EVCS_EINVAL;
	}
	struct markers mk = {NULL, nph, 0};
	if (tenant_id >= 0) {
		if (tenant_id == 0) {
			evcs_err(COMP, "tenant-scoped query without a tenant: %.120s", sql);
			return EVCS_EINVAL;
		}
		mk.flag = calloc((size_t)nph + 1, 1);
		if (!mk.flag)
			return EVCS_ENOMEM;
		scan_placeholders(sql, mark_cb, &mk);
		if (mk.nmarkers == 0) {
			evcs_err(COMP, "refused tenant-scoped SQL without a `tenant_id = ?` marker: %.160s", sql);
			free(mk.flag);
			return EVCS_EINVAL;
		}
	}
	if ((long)nparams != nph - mk.nmarkers) {
		evcs_err(COMP, "SQL has %ld placeholders (%ld tenant markers) but %zu values: %.120s", nph,
			 mk.nmarkers, nparams, sql);
		free(mk.flag);
		return EVCS_EINVAL;
	}
	for (size_t i = 0; i < nparams; i++) {
		if (params[i].type == EVCS_DB_T_REFID &&
		    (!j->txn || params[i].i < 0 || (size_t)params[i].i >= j->nstmts)) {
			evcs_err(COMP, "REFID(%lld) must name an earlier statement of the transaction",
				 (long long)params[i].i);
			free(mk.flag);
			return EVCS_EINVAL;
		}
	}
	if (j->nstmts == j->cap) {
		size_t nc = j->cap ? j->cap * 2 : 4;
		struct stmt_spec *ns = realloc(j->stmts, nc * sizeof *ns);
		if (!ns) {
			free(mk.flag);
			return EVCS_ENOMEM;
		}
		j->stmts = ns;
		j->cap = nc;
	}
	struct stmt_spec *s = &j->stmts[j->nstmts];
	memset(s, 0, sizeof *s);
	int rc = dbi_params_copy(params, nparams, &s->params);
	if (rc == 0 && mk.nmarkers) {
		/* interleave: tenant at every marker, the caller's values elsewhere */
		evcs_db_param_t *all = calloc((size_t)nph, sizeof *all);
		if (!all) {
			dbi_params_free(s->params, nparams);
			rc = EVCS_ENOMEM;
		} else {
			size_t k = 0;
			for (long i = 0; i < nph; i++)
				all[i] = mk.flag[i] ? EVCS_DB_INT(tenant_id) : s->params[k++];
			free(s->params);
			s->params = all;
		}
	}
	free(mk.flag);
	if (rc)
		return rc;
	s->nparams = (size_t)nph;
	s->sql = strdup(sql);
	if (!s->sql) {
		dbi_params_free(s->params, s->nparams);
		return EVCS_ENOMEM;
	}
	s->flags = flags;
	j->nstmts++;
	return 0;
}

int dbi_job_submit(evcs_db_t *db, struct job *j)
{
	j->submit_us = dbi_mono_us();
	pthread_mutex_lock(&db->mu);
	if (db->stopping) {
		pthread_mutex_unlock(&db->mu);
		return EVCS_EUNAVAIL;
	}
	if (db->qlen >= (size_t)db->cfg.queue_max) {
		db->st.jobs_rejected++;
		pthread_mutex_unlock(&db->mu);
		return EVCS_EBUSY;
	}
	j->next = NULL;
	if (db->qtail)
		db->qtail->next = j;
	else
		db->qhead = j;
	db->qtail = j;
	db->qlen++;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
	return 0;
}

static int query_common(evcs_db_t *db, int64_t tenant_id, const char *sql,
			const evcs_db_param_t *params, size_t nparams, unsigned flags, evcs_db_cb cb,
			void *ud)
{
	if (!db)
		return EVCS_EINVAL;
	struct job *j = dbi_job_new();
	if (!j)
		return EVCS_ENOMEM;
	int rc = job_add(j, tenant_id, sql, params, nparams, flags & EVCS_DB_REQUIRE_ROW);
	if (rc == 0) {
		j->flags = flags;
		j->cb = cb;
		j->ud = ud;
		rc = dbi_job_submit(db, j);
	}
	if (rc)
		dbi_job_free(j);
	return rc;
}

int evcs_db_query(evcs_db_t *db, int64_t tenant_id, const char *sql, const evcs_db_param_t *params,
		  size_t nparams, unsigned flags, evcs_db_cb cb, void *ud)
{
	if (tenant_id <= 0) {
		evcs_err(COMP, "tenant-scoped query with tenant_id %lld: %.120s", (long long)tenant_id,
			 sql ? sql : "(null)");
		return EVCS_EINVAL;
	}
	return query_common(db, tenant_id, sql, params, nparams, flags, cb, ud);
}

int evcs_db_query_platform(evcs_db_t *db, const char *sql, const evcs_db_param_t *params,
			   size_t nparams, unsigned flags, evcs_db_cb cb, void *ud)
{
	return query_common(db, -1, sql, params, nparams, flags, cb, ud);
}

evcs_db_txn_t *evcs_db_txn_new(evcs_db_t *db)
{
	evcs_db_txn_t *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->db = db;
	t->job = dbi_job_new();
	if (!t->job) {
		free(t);
		return NULL;
	}
	t->job->txn = 1;
	return t;
}

static int txn_add(evcs_db_txn_t *t, int64_t tenant_id, const char *sql,
		   const evcs_db_param_t *params, size_t nparams, unsigned stmt_flags)
{
	if (!t)
		return EVCS_EINVAL;
	if (t->job->poisoned)
		return t->job->poisoned;
	int rc = job_add(t->job, tenant_id, sql, params, nparams, stmt_flags);
	if (rc)
		t->job->poisoned = rc;
	return rc;
}

int evcs_db_txn_add(evcs_db_txn_t *t, int64_t tenant_id, const char *sql,
		    const evcs_db_param_t *params, size_t nparams, unsigned stmt_flags)
{
	if (tenant_id <= 0) {
		evcs_err(COMP, "tenant-scoped statement with tenant_id %lld", (long long)tenant_id);
		if (t && !t->job->poisoned)
			t->job->poisoned = EVCS_EINVAL;
		return EVCS_EINVAL;
	}
	return txn_add(t, tenant_id, sql, params, nparams, stmt_flags);
}

int evcs_db_txn_add_platform(evcs_db_txn_t *t, const char *sql, const evcs_db_param_t *params,
			     size_t nparams, unsigned stmt_flags)
{
	return txn_add(t, -1, sql, params, nparams, stmt_flags);
}

void evcs_db_txn_free(evcs_db_txn_t *t)
{
	if (!t)
		return;
	dbi_job_free(t->job);
	free(t);
}

int evcs_db_txn_submit(evcs_db_txn_t *t, unsigned flags, evcs_db_cb cb, void *ud)
{
	if (!t)
		return EVCS_EINVAL;
	struct job *j = t->job;
	evcs_db_t *db = t->db;
	free(t);
	int rc = j->poisoned ? j->poisoned : (j->nstmts == 0 ? EVCS_EINVAL : 0);
	if (rc == 0) {
		j->flags = flags;
		j->cb = cb;
		j->ud = ud;
		rc = dbi_job_submit(db, j);
	}
	if (rc)
		dbi_job_free(j);
	return rc;
}


/* ---- owner of a transaction (plugin_db.c) ---------------------------------------------- */
void evcs_db_txn_set_owner(evcs_db_txn_t *t, const void *owner, unsigned owner_flags)
{
	if (!t)
		return;
	t->owner = owner;
	t->owner_flags = owner_flags;
}

const void *evcs_db_txn_owner(const evcs_db_txn_t *t, unsigned *owner_flags)
{
	if (owner_flags)
		*owner_flags = t ? t->owner_flags : 0;
	return t ? t->owner : NULL;
}

void evcs_db_txn_poison(evcs_db_txn_t *t, int status)
{
	if (t && status && !t->job->poisoned)
		t->job->poisoned = status;
}
