/*
 * db.c: the non-blocking MariaDB data layer (contract in db.h).
 *
 * Threads: the loop thread submits jobs and runs callbacks; N workers each own one MYSQL
 * connection. Shared state (queue, done list, counters) is guarded by db->mu. Workers never
 * call into libevent: they wake the loop by writing a byte to a pipe whose read end is an
 * event on the loop, so this works whether or not the base was built with thread locks.
 * Lock order: db->mu only; never held while talking to MariaDB or running a callback.
 *
 * Job lifecycle: built on the loop (parameters deep-copied) -> queue -> worker runs it, fills
 * results -> done list -> loop callback -> freed. A job is touched by exactly one thread at a
 * time, handed over under db->mu.
 */
#include "db.h"
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

#define COMP "db"
#define STMT_CACHE_BUCKETS 256
#define STMT_CACHE_MAX 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define IDLE_PING_MS 10000
#define CELL_BUF 256
/* internal statement flag: do not keep the prepared statement (odd-sized batch flushes would
 * otherwise fill the cache and the server with one statement per row count) */
#define STMT_NOCACHE 0x100u

const unsigned evcs_db_lat_bounds_ms[EVCS_DB_LAT_BUCKETS - 1] = {1,   2,   5,    10,   25,  50,
								   100, 250, 500, 1000, 5000};

/* ---- jobs ---------------------------------------------------------------------- */
struct stmt_spec {
	char *sql;
	evcs_db_param_t *params; /* STR values point to owned copies */
	size_t nparams;
	unsigned flags;
};

struct job {
	struct job *next;
	struct stmt_spec *stmts;
	size_t nstmts, cap;
	int txn;         /* explicit transaction */
	unsigned flags;  /* EVCS_DB_IDEMPOTENT */
	int poisoned;    /* txn_add failed: submit returns this */
	evcs_db_cb cb;
	void *ud;
	evcs_db_batch_cb bdone; /* batch flush notification */
	void *bud;
	size_t brows;
	int64_t submit_us;
	/* filled by the worker */
	int status;
	char errmsg[256];
	evcs_db_result_t *res;
	size_t nres;
};

struct evcs_db_txn {
	evcs_db_t *db;
	struct job *job;
};

/* ---- workers ------------------------------------------------------------------- */
struct cached_stmt {
	struct cached_stmt *next;
	char *sql;
	MYSQL_STMT *st;
};

struct worker {
	evcs_db_t *db;
	pthread_t th;
	int idx;
	MYSQL *m;
	struct cached_stmt *cache[STMT_CACHE_BUCKETS];
	size_t ncached;
	int64_t last_used_us;
	int64_t next_connect_us;
	int backoff_ms;
	int ever_connected;
	char last_err[200];
};

struct evcs_db {
	evcs_db_config_t cfg;
	char *host, *sock, *user, *password, *name;
	struct event_base *base;
	struct event *ev_done;
	int wake[2]; /* workers write a byte when the done list becomes non-empty */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *qhead, *qtail;
	size_t qlen;
	struct job *dhead, *dtail;
	int stopping;
	struct worker *workers;
	int nworkers;
	evcs_db_stats_t st; /* guarded by mu */
};

struct evcs_db_batch {
	evcs_db_t *db;
	char *name, *head, *tail;
	unsigned ncols;
	size_t max_rows;
	unsigned max_ms;
	evcs_db_batch_cb done;
	void *ud;
	evcs_db_param_t *vals; /* nrows * ncols */
	size_t nrows, caprows;
	struct event *timer;
	int idempotent;
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- results ------------------------------------------------------------------- */
const char *evcs_db_cell(const evcs_db_result_t *r, size_t row, unsigned col)
{
	if (!r || row >= r->nrows || col >= r->ncols)
		return NULL;
	return r->cells[row * r->ncols + col];
}

int evcs_db_col(const evcs_db_result_t *r, const char *name)
{
	if (!r || !name)
		return -1;
	for (unsigned i = 0; i < r->ncols; i++)
		if (strcmp(r->colnames[i], name) == 0)
			return (int)i;
	return -1;
}

int evcs_db_cell_i64(const evcs_db_result_t *r, size_t row, unsigned col, int64_t *out)
{
	const char *s = evcs_db_cell(r, row, col);
	if (!s)
		return EVCS_ENOENT;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return EVCS_EINVAL;
	*out = v;
	return 0;
}

static void result_clear(evcs_db_result_t *r)
{
	for (size_t i = 0; i < r->nrows * r->ncols; i++)
		free(r->cells[i]);
	for (unsigned c = 0; c < r->ncols; c++)
		free(r->colnames[c]);
	free(r->cells);
	free(r->lens);
	free(r->colnames);
	memset(r, 0, sizeof *r);
}

/* ---- job building ---------------------------------------------------------------- */
static void params_free(evcs_db_param_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].type == EVCS_DB_T_STR)
			free((char *)p[i].s);
	free(p);
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->nstmts; i++) {
		free(j->stmts[i].sql);
		params_free(j->stmts[i].params, j->stmts[i].nparams);
	}
	free(j->stmts);
	if (j->res) {
		for (size_t i = 0; i < j->nres; i++)
			result_clear(&j->res[i]);
		free(j->res);
	}
	free(j);
}

/* Deep copy of the caller's values (strings duplicated, NULL string -> SQL NULL). */
static int params_copy(const evcs_db_param_t *in, size_t n, evcs_db_param_t **out)
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
				params_free(p, k);
				return EVCS_ENOMEM;
			}
			memcpy(c, in[k].s, len);
			c[len] = '\0';
			p[k].s = c;
			p[k].len = len;
		} else if (in[k].type != EVCS_DB_T_INT && in[k].type != EVCS_DB_T_NULL &&
			   in[k].type != EVCS_DB_T_REFID) {
			p[k].type = EVCS_DB_T_NULL;
			params_free(p, k + 1);
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

static int is_select(const char *sql)
{
	while (ws(*sql) || *sql == '(')
		sql++;
	return strncasecmp(sql, "SELECT", 6) == 0 && !ident_char(sql[6]);
}

static struct job *job_new(void)
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
	int rc = params_copy(params, nparams, &s->params);
	if (rc == 0 && mk.nmarkers) {
		/* interleave: tenant at every marker, the caller's values elsewhere */
		evcs_db_param_t *all = calloc((size_t)nph, sizeof *all);
		if (!all) {
			params_free(s->params, nparams);
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
		params_free(s->params, s->nparams);
		return EVCS_ENOMEM;
	}
	s->flags = flags;
	j->nstmts++;
	return 0;
}

static int job_submit(evcs_db_t *db, struct job *j)
{
	j->submit_us = mono_us();
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
	struct job *j = job_new();
	if (!j)
		return EVCS_ENOMEM;
	int rc = job_add(j, tenant_id, sql, params, nparams, flags & EVCS_DB_REQUIRE_ROW);
	if (rc == 0) {
		j->flags = flags;
		j->cb = cb;
		j->ud = ud;
		rc = job_submit(db, j);
	}
	if (rc)
		job_free(j);
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
	t->job = job_new();
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
	job_free(t->job);
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
		rc = job_submit(db, j);
	}
	if (rc)
		job_free(j);
	return rc;
}

/* ---- connections ------------------------------------------------------------------ */
MYSQL *evcs_db_connect_raw(const evcs_db_config_t *cfg, int multi, char *err, size_t errlen)
{
	MYSQL *m = mysql_init(NULL);
	if (!m) {
		snprintf(err, errlen, "mysql_init: out of memory");
		return NULL;
	}
	unsigned int cto = cfg->connect_timeout_s > 0 ? (unsigned)cfg->connect_timeout_s : 5;
	/* Read/write timeouts bound how long a worker hangs on a silently dead server; the
	 * migration runner has no such bound (partition reorganisation can take long). */
	unsigned int rwto = multi ? 0 : (cto * 6 > 30 ? cto * 6 : 30);
	my_bool no = 0;
	mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &cto);
	if (rwto) {
		mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rwto);
		mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &rwto);
	}
	mysql_optionsv(m, MYSQL_OPT_RECONNECT, &no);
	mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_optionsv(m, MYSQL_INIT_COMMAND,
		       "SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,"
		       "NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'");
	unsigned long flags = CLIENT_FOUND_ROWS | (multi ? CLIENT_MULTI_STATEMENTS : 0);
	int use_sock = cfg->socket && *cfg->socket;
	const char *host = use_sock ? "localhost" : (cfg->host && *cfg->host ? cfg->host : "localhost");
	if (!mysql_real_connect(m, host, cfg->user, cfg->password, cfg->name,
				use_sock ? 0 : (cfg->port ? cfg->port : 3306),
				use_sock ? cfg->socket : NULL, flags)) {
		snprintf(err, errlen, "cannot connect to MariaDB at %s%s%u: %s",
			 use_sock ? cfg->socket : host, use_sock ? "" : ":",
			 use_sock ? 0u : (cfg->port ? cfg->port : 3306u), mysql_error(m));
		if (use_sock) /* drop the meaningless ":0" */
			snprintf(err, errlen, "cannot connect to MariaDB at %s: %s", cfg->socket,
				 mysql_error(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

static int conn_lost_errno(unsigned e)
{
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_SERVER_LOST_EXTENDED ||
	       e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR || e == CR_COMMANDS_OUT_OF_SYNC ||
	       e == ER_CONNECTION_KILLED || e == ER_SERVER_SHUTDOWN || e == 4031 /* idle timeout */;
}

static void cache_clear(struct worker *w)
{
	for (int b = 0; b < STMT_CACHE_BUCKETS; b++) {
		struct cached_stmt *c = w->cache[b];
		while (c) {
			struct cached_stmt *n = c->next;
			mysql_stmt_close(c->st);
			free(c->sql);
			free(c);
			c = n;
		}
		w->cache[b] = NULL;
	}
	w->ncached = 0;
}

static void worker_disconnect(struct worker *w)
{
	if (!w->m)
		return;
	cache_clear(w);
	mysql_close(w->m);
	w->m = NULL;
	evcs_db_t *db = w->db;
	pthread_mutex_lock(&db->mu);
	db->st.connected--;
	pthread_mutex_unlock(&db->mu);
}

/* One connect attempt if the backoff allows; 0 when connected. */
static int worker_connect(struct worker *w)
{
	if (w->m)
		return 0;
	int64_t now = mono_us();
	if (now < w->next_connect_us)
		return -1;
	evcs_db_t *db = w->db;
	char err[256];
	w->m = evcs_db_connect_raw(&db->cfg, 0, err, sizeof err);
	if (!w->m) {
		if (strcmp(err, w->last_err) != 0) /* once per distinct failure, not per retry */
			evcs_warn(COMP, "worker %d: %s", w->idx, err);
		snprintf(w->last_err, sizeof w->last_err, "%.190s", err);
		w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (w->backoff_ms > BACKOFF_MAX_MS)
			w->backoff_ms = BACKOFF_MAX_MS;
		w->next_connect_us = now + (int64_t)w->backoff_ms * 1000;
		return -1;
	}
	pthread_mutex_lock(&db->mu);
	db->st.connected++;
	if (w->ever_connected)
		db->st.reconnects++;
	pthread_mutex_unlock(&db->mu);
	if (w->last_err[0])
		evcs_notice(COMP, "worker %d: connected", w->idx);
	w->last_err[0] = '\0';
	w->ever_connected = 1;
	w->backoff_ms = 0;
	w->next_connect_us = 0;
	w->last_used_us = mono_us();
	return 0;
}

static unsigned hash_sql(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % STMT_CACHE_BUCKETS;
}

static void cache_drop(struct worker *w, const char *sql)
{
	struct cached_stmt **pp = &w->cache[hash_sql(sql)];
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->sql, sql) == 0) {
			struct cached_stmt *c = *pp;
			*pp = c->next;
			mysql_stmt_close(c->st);
			free(c->sql);
			free(c);
			w->ncached--;
			return;
		}
	}
}

/* Prepared statement for sql on this worker's connection (cached). NULL with *eno set. */
static MYSQL_STMT *get_stmt(struct worker *w, const char *sql, unsigned *eno, char *msg, size_t ml)
{
	unsigned h = hash_sql(sql);
	for (struct cached_stmt *c = w->cache[h]; c; c = c->next)
		if (strcmp(c->sql, sql) == 0)
			return c->st;
	if (w->ncached >= STMT_CACHE_MAX)
		cache_clear(w); /* rare: more distinct statements than expected; start over */
	MYSQL_STMT *st = mysql_stmt_init(w->m);
	if (!st) {
		*eno = mysql_errno(w->m);
		snprintf(msg, ml, "mysql_stmt_init: %s", mysql_error(w->m));
		return NULL;
	}
	if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
		*eno = mysql_stmt_errno(st);
		snprintf(msg, ml, "%s", mysql_stmt_error(st));
		mysql_stmt_close(st);
		return NULL;
	}
	struct cached_stmt *c = calloc(1, sizeof *c);
	if (!c || !(c->sql = strdup(sql))) {
		free(c);
		mysql_stmt_close(st);
		*eno = 0;
		snprintf(msg, ml, "out of memory");
		return NULL;
	}
	c->st = st;
	c->next = w->cache[h];
	w->cache[h] = c;
	w->ncached++;
	return st;
}

enum exec_outcome { XO_OK, XO_FAIL, XO_LOST, XO_RETRY };

struct exec_ctx {
	int ambiguous; /* a write may have been applied when the connection broke */
	unsigned eno;
};

/* Copies every row of an executed statement into r. */
static int fetch_rows(MYSQL_STMT *st, evcs_db_result_t *r, unsigned *eno, char *msg, size_t ml)
{
	MYSQL_RES *meta = mysql_stmt_result_metadata(st);
	if (!meta) {
		r->affected = mysql_stmt_affected_rows(st);
		r->insert_id = mysql_stmt_insert_id(st);
		return 0;
	}
	unsigned nc = mysql_num_fields(meta);
	MYSQL_FIELD *f = mysql_fetch_fields(meta);
	MYSQL_BIND *b = calloc(nc, sizeof *b);
	unsigned long *len = calloc(nc, sizeof *len);
	my_bool *isnull = calloc(nc, sizeof *isnull);
	my_bool *trunc = calloc(nc, sizeof *trunc);
	char *bufs = malloc((size_t)nc * CELL_BUF);
	r->colnames = calloc(nc, sizeof *r->colnames);
	int rc = 0;
	if (!b || !len || !isnull || !trunc || !bufs || !r->colnames) {
		rc = EVCS_ENOMEM;
		goto out;
	}
	r->ncols = nc;
	for (unsigned c = 0; c < nc; c++) {
		r->colnames[c] = strdup(f[c].name ? f[c].name : "");
		b[c].buffer_type = MYSQL_TYPE_STRING;
		b[c].buffer = bufs + (size_t)c * CELL_BUF;
		b[c].buffer_length = CELL_BUF;
		b[c].length = &len[c];
		b[c].is_null = &isnull[c];
		b[c].error = &trunc[c];
	}
	if (mysql_stmt_bind_result(st, b) != 0) {
		*eno = mysql_stmt_errno(st);
		snprintf(msg, ml, "%s", mysql_stmt_error(st));
		rc = EVCS_ERR;
		goto out;
	}
	size_t cap = 0;
	for (;;) {
		int fr = mysql_stmt_fetch(st);
		if (fr == MYSQL_NO_DATA)
			break;
		if (fr == 1) {
			*eno = mysql_stmt_errno(st);
			snprintf(msg, ml, "%s", mysql_stmt_error(st));
			rc = EVCS_ERR;
			goto out;
		}
		if (r->nrows == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **ncells = realloc(r->cells, ncap * nc * sizeof *ncells);
			if (ncells)
				r->cells = ncells;
			size_t *nlens = ncells ? realloc(r->lens, ncap * nc * sizeof *nlens) : NULL;
			if (!ncells || !nlens) {
				rc = EVCS_ENOMEM;
				goto out;
			}
			r->lens = nlens;
			cap = ncap;
		}
		size_t base = r->nrows * nc;
		for (unsigned c = 0; c < nc; c++)
			r->cells[base + c] = NULL;
		r->nrows++;
		for (unsigned c = 0; c < nc; c++) {
			r->lens[base + c] = 0;
			if (isnull[c])
				continue;
			char *cell = malloc(len[c] + 1);
			if (!cell) {
				rc = EVCS_ENOMEM;
				goto out;
			}
			if (len[c] <= CELL_BUF) {
				memcpy(cell, b[c].buffer, len[c]);
			} else {
				/* value longer than the bound buffer: fetch it whole */
				MYSQL_BIND one;
				memset(&one, 0, sizeof one);
				unsigned long l2 = 0;
				one.buffer_type = MYSQL_TYPE_STRING;
				one.buffer = cell;
				one.buffer_length = len[c] + 1;
				one.length = &l2;
				if (mysql_stmt_fetch_column(st, &one, c, 0) != 0) {
					free(cell);
					*eno = mysql_stmt_errno(st);
					snprintf(msg, ml, "%s", mysql_stmt_error(st));
					rc = EVCS_ERR;
					goto out;
				}
			}
			cell[len[c]] = '\0';
			r->cells[base + c] = cell;
			r->lens[base + c] = len[c];
		}
	}
	r->affected = r->nrows;
out:
	mysql_stmt_free_result(st);
	mysql_free_result(meta);
	free(b);
	free(len);
	free(isnull);
	free(trunc);
	free(bufs);
	return rc;
}

static int map_errno(unsigned e)
{
	if (e == ER_DUP_ENTRY || e == ER_DUP_ENTRY_WITH_KEY_NAME)
		return EVCS_EEXIST;
	return EVCS_ERR;
}

/* Runs one statement of job j (index i) into j->res[i]. */
static enum exec_outcome run_stmt(struct worker *w, struct job *j, size_t i, struct exec_ctx *x)
{
	struct stmt_spec *s = &j->stmts[i];
	unsigned eno = 0;
	int reprepared = 0;
	MYSQL_STMT *st;
again:
	st = get_stmt(w, s->sql, &eno, j->errmsg, sizeof j->errmsg);
	if (!st)
		goto fail;
	if (mysql_stmt_param_count(st) != s->nparams) {
		snprintf(j->errmsg, sizeof j->errmsg, "statement has %lu placeholders, %zu values given",
			 mysql_stmt_param_count(st), s->nparams);
		j->status = EVCS_EINVAL;
		return XO_FAIL;
	}
	MYSQL_BIND *b = NULL;
	int64_t *iv = NULL;
	if (s->nparams) {
		b = calloc(s->nparams, sizeof *b);
		iv = calloc(s->nparams, sizeof *iv);
		if (!b || !iv) {
			free(b);
			free(iv);
			j->status = EVCS_ENOMEM;
			snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
			return XO_FAIL;
		}
	}
	for (size_t k = 0; k < s->nparams; k++) {
		const evcs_db_param_t *p = &s->params[k];
		switch (p->type) {
		case EVCS_DB_T_INT:
		case EVCS_DB_T_REFID:
			iv[k] = p->type == EVCS_DB_T_INT ? p->i : (int64_t)j->res[p->i].insert_id;
			b[k].buffer_type = MYSQL_TYPE_LONGLONG;
			b[k].buffer = &iv[k];
			break;
		case EVCS_DB_T_STR:
			b[k].buffer_type = MYSQL_TYPE_STRING;
			b[k].buffer = (void *)p->s;
			b[k].buffer_length = (unsigned long)p->len;
			break;
		default:
			b[k].buffer_type = MYSQL_TYPE_NULL;
			break;
		}
	}
	int bad = (s->nparams && mysql_stmt_bind_param(st, b) != 0) || mysql_stmt_execute(st) != 0;
	free(b);
	free(iv);
	if (bad) {
		eno = mysql_stmt_errno(st);
		snprintf(j->errmsg, sizeof j->errmsg, "%s", mysql_stmt_error(st));
		if (eno == ER_NEED_REPREPARE && !reprepared) {
			/* table definition changed under the cached statement */
			cache_drop(w, s->sql);
			reprepared = 1;
			goto again;
		}
		/* 2006 means the request could not be sent: nothing ran. Any other loss during an
		 * autocommit write leaves its outcome unknown. (Inside a transaction nothing is
		 * committed before COMMIT, so only a lost COMMIT is ambiguous.) */
		if (conn_lost_errno(eno) && eno != CR_SERVER_GONE_ERROR && !j->txn && !is_select(s->sql))
			x->ambiguous = 1;
		goto fail;
	}
	if (fetch_rows(st, &j->res[i], &eno, j->errmsg, sizeof j->errmsg) != 0) {
		if (conn_lost_errno(eno))
			goto fail;
		j->status = eno ? map_errno(eno) : EVCS_ENOMEM;
		return XO_FAIL;
	}
	if (s->flags & STMT_NOCACHE)
		cache_drop(w, s->sql);
	if ((s->flags & EVCS_DB_REQUIRE_ROW) && j->res[i].affected == 0) {
		snprintf(j->errmsg, sizeof j->errmsg, "no row matched");
		j->status = EVCS_ENOENT;
		return XO_FAIL;
	}
	return XO_OK;
fail:
	x->eno = eno;
	if (conn_lost_errno(eno))
		return XO_LOST;
	if (eno == ER_LOCK_DEADLOCK)
		return XO_RETRY; /* InnoDB rolled the whole transaction back: safe to run again */
	j->status = eno ? map_errno(eno) : EVCS_ENOMEM;
	return XO_FAIL;
}

static void job_reset_results(struct job *j)
{
	if (j->res)
		for (size_t i = 0; i < j->nres; i++)
			result_clear(&j->res[i]);
	j->status = 0;
	j->errmsg[0] = '\0';
}

/* One attempt at the whole job on a live connection. */
static enum exec_outcome exec_job(struct worker *w, struct job *j, struct exec_ctx *x)
{
	MYSQL *m = w->m;
	if (j->txn && mysql_query(m, "START TRANSACTION") != 0) {
		x->eno = mysql_errno(m);
		snprintf(j->errmsg, sizeof j->errmsg, "%s", mysql_error(m));
		if (conn_lost_errno(x->eno))
			return XO_LOST;
		j->status = EVCS_ERR;
		return XO_FAIL;
	}
	for (size_t i = 0; i < j->nstmts; i++) {
		enum exec_outcome o = run_stmt(w, j, i, x);
		if (o == XO_OK)
			continue;
		if (j->txn && o != XO_LOST && mysql_rollback(m) != 0 && conn_lost_errno(mysql_errno(m)))
			worker_disconnect(w); /* the server rolls back on disconnect anyway */
		if (o == XO_FAIL && j->txn && j->nstmts > 1) {
			char tmp[sizeof j->errmsg];
			snprintf(tmp, sizeof tmp, "statement %zu: %.200s", i, j->errmsg);
			memcpy(j->errmsg, tmp, sizeof tmp);
		}
		return o;
	}
	if (j->txn && mysql_commit(m) != 0) {
		x->eno = mysql_errno(m);
		snprintf(j->errmsg, sizeof j->errmsg, "COMMIT: %s", mysql_error(m));
		if (conn_lost_errno(x->eno)) {
			x->ambiguous = 1; /* the commit may have happened */
			return XO_LOST;
		}
		if (x->eno == ER_LOCK_DEADLOCK)
			return XO_RETRY;
		mysql_rollback(m);
		j->status = map_errno(x->eno);
		return XO_FAIL;
	}
	return XO_OK;
}

static void worker_run_job(struct worker *w, struct job *j)
{
	evcs_db_t *db = w->db;
	j->res = calloc(j->nstmts, sizeof *j->res);
	if (!j->res) {
		j->status = EVCS_ENOMEM;
		snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
		return;
	}
	j->nres = j->nstmts;
	int readonly = !j->txn && j->nstmts == 1 && is_select(j->stmts[0].sql);
	int64_t deadline = j->submit_us + (int64_t)db->cfg.unavail_ms * 1000;
	for (int attempt = 0;; attempt++) {
		while (worker_connect(w) != 0) {
			int64_t now = mono_us();
			if (now >= deadline) {
				j->status = EVCS_EUNAVAIL;
				snprintf(j->errmsg, sizeof j->errmsg, "database unavailable: %s", w->last_err);
				return;
			}
			int64_t wake = w->next_connect_us < deadline ? w->next_connect_us : deadline;
			int64_t us = wake - now;
			if (us > 100000)
				us = 100000;
			if (us > 0) {
				struct timespec ts = {0, (long)us * 1000};
				nanosleep(&ts, NULL);
			}
		}
		struct exec_ctx x = {0, 0};
		enum exec_outcome o = exec_job(w, j, &x);
		w->last_used_us = mono_us();
		if (o == XO_OK) {
			j->status = EVCS_OK;
			j->errmsg[0] = '\0';
			return;
		}
		if (o == XO_FAIL) {
			/* duplicates and REQUIRE_ROW misses are answers the caller expects, not faults */
			evcs_log(j->status == EVCS_EEXIST || j->status == EVCS_ENOENT ? EVCS_LOG_DEBUG
										     : EVCS_LOG_WARNING,
				 COMP, 0, NULL,
				 "query failed (%u): %s [%.120s]", x.eno, j->errmsg, j->stmts[0].sql);
			return;
		}
		if (o == XO_LOST) {
			evcs_warn(COMP, "worker %d: connection lost (%u: %s)", w->idx, x.eno, j->errmsg);
			snprintf(w->last_err, sizeof w->last_err, "%.190s", j->errmsg);
			worker_disconnect(w);
		}
		int safe = !x.ambiguous || readonly || (j->flags & EVCS_DB_IDEMPOTENT);
		if (attempt >= 1 || !safe) {
			j->status = EVCS_EUNAVAIL;
			if (x.ambiguous && !safe) {
				char tmp[sizeof j->errmsg];
				snprintf(tmp, sizeof tmp, "connection lost, outcome unknown: %.200s", j->errmsg);
				memcpy(j->errmsg, tmp, sizeof tmp);
			}
			if (o == XO_RETRY)
				j->status = EVCS_ERR;
			return;
		}
		job_reset_results(j);
		pthread_mutex_lock(&db->mu);
		db->st.jobs_retried++;
		pthread_mutex_unlock(&db->mu);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	evcs_db_t *db = w->db;
	mysql_thread_init();
	worker_connect(w);
	pthread_mutex_lock(&db->mu);
	for (;;) {
		while (!db->qhead && !db->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 2;
			if (pthread_cond_timedwait(&db->cv, &db->mu, &ts) == ETIMEDOUT && !db->qhead &&
			    !db->stopping) {
				/* Idle: keep the connection honest so `connected` means something and a
				 * restarted server is noticed before the next job needs it. */
				pthread_mutex_unlock(&db->mu);
				if (!w->m)
					worker_connect(w);
				else if (mono_us() - w->last_used_us > (int64_t)IDLE_PING_MS * 1000) {
					if (mysql_ping(w->m) != 0)
						worker_disconnect(w);
					else
						w->last_used_us = mono_us();
				}
				pthread_mutex_lock(&db->mu);
			}
		}
		if (!db->qhead)
			break; /* stopping and drained */
		struct job *j = db->qhead;
		db->qhead = j->next;
		if (!db->qhead)
			db->qtail = NULL;
		db->qlen--;
		db->st.in_flight++;
		pthread_mutex_unlock(&db->mu);

		worker_run_job(w, j);

		pthread_mutex_lock(&db->mu);
		db->st.in_flight--;
		j->next = NULL;
		int was_empty = db->dhead == NULL;
		if (db->dtail)
			db->dtail->next = j;
		else
			db->dhead = j;
		db->dtail = j;
		if (was_empty) {
			/* a full pipe already means "readable": EAGAIN is fine */
			ssize_t wr = write(db->wake[1], "x", 1);
			(void)wr;
		}
	}
	pthread_mutex_unlock(&db->mu);
	worker_disconnect(w);
	cache_clear(w);
	mysql_thread_end();
	return NULL;
}

/* ---- completions on the loop ------------------------------------------------------- */
static void complete_job(evcs_db_t *db, struct job *j, int64_t now)
{
	uint64_t lat = (uint64_t)(now - j->submit_us);
	unsigned b = 0;
	while (b < EVCS_DB_LAT_BUCKETS - 1 && lat > (uint64_t)evcs_db_lat_bounds_ms[b] * 1000)
		b++;
	pthread_mutex_lock(&db->mu);
	db->st.latency_us_sum += lat;
	db->st.latency_count++;
	db->st.latency_bucket[b]++;
	if (j->status == EVCS_OK)
		db->st.jobs_done++;
	else
		db->st.jobs_failed++;
	if (j->bdone || j->brows) {
		if (j->status == EVCS_OK)
			db->st.batch_rows_written += j->brows;
		else
			db->st.batch_rows_dropped += j->brows;
	}
	pthread_mutex_unlock(&db->mu);
	if (j->cb)
		j->cb(j->status, j->status == EVCS_OK ? j->res : NULL, j->status == EVCS_OK ? j->nres : 0,
		      j->errmsg, j->ud);
	if (j->bdone)
		j->bdone(j->status, j->brows, j->bud);
	job_free(j);
}

static void drain_done(evcs_db_t *db)
{
	for (;;) {
		pthread_mutex_lock(&db->mu);
		struct job *list = db->dhead;
		db->dhead = db->dtail = NULL;
		pthread_mutex_unlock(&db->mu);
		if (!list)
			return;
		int64_t now = mono_us();
		while (list) {
			struct job *n = list->next;
			complete_job(db, list, now);
			list = n;
		}
	}
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];
	/* empty the pipe before taking the list, so a later append always wakes us again */
	while (read(fd, buf, sizeof buf) > 0)
		;
	drain_done(arg);
}

/* ---- open / close -------------------------------------------------------------------- */
int evcs_db_open(const evcs_db_config_t *cfg, struct event_base *base, evcs_db_t **out)
{
	if (!cfg || !base || !out || !cfg->user || !cfg->name)
		return EVCS_EINVAL;
	if (mysql_library_init(0, NULL, NULL) != 0)
		return EVCS_ERR;
	evcs_db_t *db = calloc(1, sizeof *db);
	if (!db)
		return EVCS_ENOMEM;
	db->cfg = *cfg;
	db->host = xstrdup(cfg->host);
	db->sock = xstrdup(cfg->socket);
	db->user = xstrdup(cfg->user);
	db->password = xstrdup(cfg->password);
	db->name = xstrdup(cfg->name);
	db->cfg.host = db->host;
	db->cfg.socket = db->sock;
	db->cfg.user = db->user;
	db->cfg.password = db->password;
	db->cfg.name = db->name;
	if (db->cfg.pool <= 0)
		db->cfg.pool = 4;
	if (db->cfg.connect_timeout_s <= 0)
		db->cfg.connect_timeout_s = 5;
	if (db->cfg.queue_max <= 0)
		db->cfg.queue_max = 10000;
	if (db->cfg.unavail_ms <= 0)
		db->cfg.unavail_ms = 10000;
	db->base = base;
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->cv, NULL);
	db->wake[0] = db->wake[1] = -1;
	if (pipe2(db->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		evcs_err(COMP, "pipe: %s", strerror(errno));
		db->wake[0] = db->wake[1] = -1;
		evcs_db_close(db);
		return EVCS_ERR;
	}
	db->ev_done = event_new(base, db->wake[0], EV_READ | EV_PERSIST, on_done, db);
	if (db->ev_done)
		event_add(db->ev_done, NULL);
	db->workers = calloc((size_t)db->cfg.pool, sizeof *db->workers);
	if (!db->ev_done || !db->workers) {
		evcs_db_close(db);
		return EVCS_ENOMEM;
	}
	db->st.workers = db->cfg.pool;
	for (int i = 0; i < db->cfg.pool; i++) {
		struct worker *w = &db->workers[i];
		w->db = db;
		w->idx = i;
		if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
			evcs_err(COMP, "cannot start database worker %d", i);
			evcs_db_close(db);
			return EVCS_ERR;
		}
		db->nworkers++;
	}
	evcs_info(COMP, "data layer: %d connections to %s/%s, queue %d", db->cfg.pool,
		  db->sock && *db->sock ? db->sock : (db->host ? db->host : "localhost"), db->name,
		  db->cfg.queue_max);
	*out = db;
	return 0;
}

void evcs_db_close(evcs_db_t *db)
{
	if (!db)
		return;
	pthread_mutex_lock(&db->mu);
	db->stopping = 1;
	pthread_cond_broadcast(&db->cv);
	pthread_mutex_unlock(&db->mu);
	for (int i = 0; i < db->nworkers; i++)
		pthread_join(db->workers[i].th, NULL);
	drain_done(db);
	if (db->ev_done)
		event_free(db->ev_done);
	if (db->wake[0] >= 0) {
		close(db->wake[0]);
		close(db->wake[1]);
	}
	pthread_cond_destroy(&db->cv);
	pthread_mutex_destroy(&db->mu);
	free(db->workers);
	free(db->host);
	free(db->sock);
	free(db->user);
	free(db->password);
	free(db->name);
	free(db);
}

void evcs_db_stats(evcs_db_t *db, evcs_db_stats_t *out)
{
	pthread_mutex_lock(&db->mu);
	*out = db->st;
	out->queue_depth = db->qlen;
	pthread_mutex_unlock(&db->mu);
}

int evcs_db_config_from_conf(const struct evcs_conf *c, evcs_db_config_t *out, char *err,
			     size_t errlen)
{
	memset(out, 0, sizeof *out);
	long long port, pool, cto, qmax;
	if (evcs_conf_int(c, "database", "port", 3306, 1, 65535, &port, err, errlen) ||
	    evcs_conf_int(c, "database", "pool", 4, 1, 256, &pool, err, errlen) ||
	    evcs_conf_int(c, "database", "connect_timeout", 5, 1, 600, &cto, err, errlen) ||
	    evcs_conf_int(c, "database", "queue_max", 10000, 1, 10000000, &qmax, err, errlen))
		return EVCS_EINVAL;
	out->host = evcs_conf_get(c, "database", "host", "localhost");
	out->socket = evcs_conf_get(c, "database", "socket", NULL);
	out->user = evcs_conf_get(c, "database", "user", "evcs");
	out->password = evcs_conf_get(c, "database", "password", "");
	out->name = evcs_conf_get(c, "database", "name", "evcs");
	out->port = (unsigned)port;
	out->pool = (int)pool;
	out->connect_timeout_s = (int)cto;
	out->queue_max = (int)qmax;
	out->unavail_ms = (int)cto * 2000;
	return 0;
}

/* ---- batching ------------------------------------------------------------------------- */
static void batch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	evcs_db_batch_flush(arg);
}

evcs_db_batch_t *evcs_db_batch_new(evcs_db_t *db, const char *name, const char *head,
				   unsigned ncols, const char *tail, size_t max_rows,
				   unsigned max_ms, evcs_db_batch_cb done, void *ud)
{
	if (!db || !head || ncols == 0 || max_rows == 0 || (size_t)ncols * max_rows > 65535) {
		evcs_err(COMP, "batch %s: bad shape (%u columns x %zu rows; placeholders max 65535)",
			 name ? name : "?", ncols, max_rows);
		return NULL;
	}
	evcs_db_batch_t *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->db = db;
	b->name = strdup(name ? name : "batch");
	b->head = strdup(head);
	b->tail = strdup(tail ? tail : "");
	b->ncols = ncols;
	b->max_rows = max_rows;
	b->max_ms = max_ms ? max_ms : 1000;
	b->done = done;
	b->ud = ud;
	b->timer = evtimer_new(db->base, batch_timer_cb, b);
	/* An upsert or INSERT IGNORE can safely be replayed after a lost connection. */
	b->idempotent = (tail && strcasestr(tail, "ON DUPLICATE KEY")) ||
			strncasecmp(head, "INSERT IGNORE", 13) == 0 || strncasecmp(head, "REPLACE", 7) == 0;
	if (!b->name || !b->head || !b->tail || !b->timer) {
		evcs_db_batch_free(b);
		return NULL;
	}
	return b;
}

size_t evcs_db_batch_pending(const evcs_db_batch_t *b)
{
	return b ? b->nrows : 0;
}

static void batch_arm(evcs_db_batch_t *b)
{
	struct timeval tv = {(time_t)(b->max_ms / 1000), (suseconds_t)((b->max_ms % 1000) * 1000)};
	evtimer_add(b->timer, &tv);
}

int evcs_db_batch_add(evcs_db_batch_t *b, const evcs_db_param_t *row)
{
	if (!b || !row)
		return EVCS_EINVAL;
	for (unsigned c = 0; c < b->ncols; c++)
		if (row[c].type == EVCS_DB_T_REFID)
			return EVCS_EINVAL;
	if (b->nrows == b->caprows) {
		size_t nc = b->caprows ? b->caprows * 2 : b->max_rows;
		evcs_db_param_t *nv = realloc(b->vals, nc * b->ncols * sizeof *nv);
		if (!nv)
			return EVCS_ENOMEM;
		b->vals = nv;
		b->caprows = nc;
	}
	evcs_db_param_t *copy;
	int rc = params_copy(row, b->ncols, &copy);
	if (rc)
		return rc;
	memcpy(b->vals + b->nrows * b->ncols, copy, b->ncols * sizeof *copy);
	free(copy); /* the strings moved into vals */
	b->nrows++;
	if (b->nrows >= b->max_rows)
		return evcs_db_batch_flush(b);
	if (b->nrows == 1)
		batch_arm(b);
	return 0;
}

int evcs_db_batch_flush(evcs_db_batch_t *b)
{
	if (!b)
		return EVCS_EINVAL;
	int rc = 0;
	while (b->nrows > 0) {
		size_t k = b->nrows < b->max_rows ? b->nrows : b->max_rows;
		size_t hl = strlen(b->head), tl = strlen(b->tail);
		size_t rowl = 2 + 2 * (size_t)b->ncols; /* "(?,?)," */
		char *sql = malloc(hl + 8 + k * rowl + 1 + tl + 1);
		struct job *j = job_new();
		evcs_db_param_t *p = NULL;
		if (j && sql && (j->stmts = calloc(1, sizeof *j->stmts)))
			p = malloc(k * b->ncols * sizeof *p);
		if (!p) {
			free(sql);
			job_free(j);
			rc = EVCS_ENOMEM;
			break;
		}
		char *o = sql;
		memcpy(o, b->head, hl);
		o += hl;
		memcpy(o, " VALUES ", 8);
		o += 8;
		for (size_t r = 0; r < k; r++) {
			*o++ = r ? ',' : '(';
			if (r)
				*o++ = '(';
			for (unsigned c = 0; c < b->ncols; c++) {
				if (c)
					*o++ = ',';
				*o++ = '?';
			}
			*o++ = ')';
		}
		if (tl) {
			*o++ = ' ';
			memcpy(o, b->tail, tl);
			o += tl;
		}
		*o = '\0';
		memcpy(p, b->vals, k * b->ncols * sizeof *p);
		j->cap = j->nstmts = 1;
		j->stmts[0].sql = sql;
		j->stmts[0].params = p;
		j->stmts[0].nparams = k * b->ncols;
		j->stmts[0].flags = k < b->max_rows ? STMT_NOCACHE : 0;
		j->flags = b->idempotent ? EVCS_DB_IDEMPOTENT : 0;
		j->bdone = b->done;
		j->bud = b->ud;
		j->brows = k;
		rc = job_submit(b->db, j);
		if (rc) {
			/* the values stay in the batch: detach them from the job before freeing it */
			j->stmts[0].nparams = 0;
			job_free(j);
			break;
		}
		b->nrows -= k;
		memmove(b->vals, b->vals + k * b->ncols, b->nrows * b->ncols * sizeof *b->vals);
	}
	size_t keep = 8 * b->max_rows;
	if (b->nrows > keep) {
		size_t drop = b->nrows - keep;
		for (size_t i = 0; i < drop * b->ncols; i++)
			if (b->vals[i].type == EVCS_DB_T_STR)
				free((char *)b->vals[i].s);
		memmove(b->vals, b->vals + drop * b->ncols, keep * b->ncols * sizeof *b->vals);
		b->nrows = keep;
		pthread_mutex_lock(&b->db->mu);
		b->db->st.batch_rows_dropped += drop;
		pthread_mutex_unlock(&b->db->mu);
		evcs_err(COMP, "batch %s: database queue full, dropped %zu rows", b->name, drop);
	}
	if (b->nrows > 0)
		batch_arm(b); /* retry later */
	else
		evtimer_del(b->timer);
	if (rc)
		evcs_warn(COMP, "batch %s: flush deferred (%d), %zu rows pending", b->name, rc, b->nrows);
	return rc;
}

void evcs_db_batch_free(evcs_db_batch_t *b)
{
	if (!b)
		return;
	if (b->nrows && b->timer)
		evcs_db_batch_flush(b);
	if (b->nrows)
		evcs_err(COMP, "batch %s: %zu rows lost at shutdown", b->name, b->nrows);
	for (size_t i = 0; i < b->nrows * b->ncols; i++)
		if (b->vals[i].type == EVCS_DB_T_STR)
			free((char *)b->vals[i].s);
	if (b->timer)
		event_free(b->timer);
	free(b->vals);
	free(b->name);
	free(b->head);
	free(b->tail);
	free(b);
}
