/*
 * db.c: the non-blocking MariaDB data layer (contract in db.h): open/close, completions on the
 * loop, stats, configuration, result accessors. Jobs are built in db_job.c, run by the workers
 * of db_worker.c; batches are db_batch.c (shared structs in db_internal.h).
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

const unsigned evcs_db_lat_bounds_ms[EVCS_DB_LAT_BUCKETS - 1] = {1,   2,   5,    10,   25,  50,
								   100, 250, 500, 1000, 5000};

int64_t dbi_mono_us(void)
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

void dbi_result_clear(evcs_db_result_t *r)
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
	dbi_job_free(j);
}

void dbi_drain_done(evcs_db_t *db)
{
	for (;;) {
		pthread_mutex_lock(&db->mu);
		struct job *list = db->dhead;
		db->dhead = db->dtail = NULL;
		pthread_mutex_unlock(&db->mu);
		if (!list)
			return;
		int64_t now = dbi_mono_us();
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
	dbi_drain_done(arg);
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
		if (pthread_create(&w->th, NULL, dbi_worker_main, w) != 0) {
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
	dbi_drain_done(db);
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

