/*
 * db_batch.c: multi-row batches (contract in db.h, "batching"): rows accumulate on the loop and
 * leave as one INSERT ... VALUES (...),(...) job when max_rows are pending or max_ms passed.
 * Loop thread only.
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
	int rc = dbi_params_copy(row, b->ncols, &copy);
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
		struct job *j = dbi_job_new();
		evcs_db_param_t *p = NULL;
		if (j && sql && (j->stmts = calloc(1, sizeof *j->stmts)))
			p = malloc(k * b->ncols * sizeof *p);
		if (!p) {
			free(sql);
			dbi_job_free(j);
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
		rc = dbi_job_submit(b->db, j);
		if (rc) {
			/* the values stay in the batch: detach them from the job before freeing it */
			j->stmts[0].nparams = 0;
			dbi_job_free(j);
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
