/*
 * db_worker.c: the data layer's worker threads (contract in db.h): one MYSQL connection each,
 * reconnect with backoff, the per-worker prepared statement cache, binding and fetching, running
 * a job (with the retry rules of db.h) and handing it back to the loop through the done list.
 * Nothing here runs on the loop thread except evcs_db_connect_raw (blocking, start-up).
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
	int64_t now = dbi_mono_us();
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
	w->last_used_us = dbi_mono_us();
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
		if (conn_lost_errno(eno) && eno != CR_SERVER_GONE_ERROR && !j->txn && !dbi_is_select(s->sql))
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
			dbi_result_clear(&j->res[i]);
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
	int readonly = !j->txn && j->nstmts == 1 && dbi_is_select(j->stmts[0].sql);
	int64_t deadline = j->submit_us + (int64_t)db->cfg.unavail_ms * 1000;
	for (int attempt = 0;; attempt++) {
		while (worker_connect(w) != 0) {
			int64_t now = dbi_mono_us();
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
		w->last_used_us = dbi_mono_us();
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

void *dbi_worker_main(void *arg)
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
				else if (dbi_mono_us() - w->last_used_us > (int64_t)IDLE_PING_MS * 1000) {
					if (mysql_ping(w->m) != 0)
						worker_disconnect(w);
					else
						w->last_used_us = dbi_mono_us();
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

