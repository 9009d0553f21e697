/*
 * db_internal.h: what the data layer's files share (not for use outside core/db*.c).
 *
 * The data layer is split along its seams: db.c (open/close, completions on the loop, stats,
 * configuration, result accessors), db_job.c (building jobs, the tenant check, submitting),
 * db_worker.c (worker threads: connections, prepared statements, executing jobs), db_batch.c
 * (multi-row batches). Locking and the job lifecycle are described in db.c.
 */
#ifndef EVCS_DB_INTERNAL_H
#define EVCS_DB_INTERNAL_H

#include "db.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct st_mysql_stmt;

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
	const void *owner;     /* who opened it (plugin_db.c), NULL for core code */
	unsigned owner_flags; /* that owner's rights (EVCS_PLUGIN_F_*) */
};

/* ---- workers ------------------------------------------------------------------- */
struct cached_stmt {
	struct cached_stmt *next;
	char *sql;
	struct st_mysql_stmt *st;
};

struct worker {
	evcs_db_t *db;
	pthread_t th;
	int idx;
	struct st_mysql *m;
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

/* db.c */
int64_t dbi_mono_us(void);
void dbi_result_clear(evcs_db_result_t *r);
void dbi_drain_done(evcs_db_t *db);
/* db_job.c */
struct job *dbi_job_new(void);
void dbi_job_free(struct job *j);
int dbi_job_submit(evcs_db_t *db, struct job *j);
int dbi_params_copy(const evcs_db_param_t *in, size_t n, evcs_db_param_t **out);
void dbi_params_free(evcs_db_param_t *p, size_t n);
int dbi_is_select(const char *sql);
/* db_worker.c: a worker thread's body (arg: struct worker *) */
void *dbi_worker_main(void *arg);

/* db_migrate.c: blocking helpers shared with the plugin migration runner (db_plugin_migrate.c) */
struct st_mysql;
void evcs_dbm_sha256_hex(const char *data, size_t len, char out[65]);
int evcs_dbm_has_delimiter(const char *sql); /* a DELIMITER client directive line */
int64_t evcs_dbm_now_ms(void);
/* run sql (results drained); err gets the server's message */
int evcs_dbm_exec(struct st_mysql *m, const char *sql, char *err, size_t errlen);
/* one integer from a one-row query; *out = -1 for NULL or no row */
int evcs_dbm_query_int(struct st_mysql *m, const char *sql, long long *out, char *err,
		       size_t errlen);
/* send one multi-statement batch and walk its results; err names the failing statement */
int evcs_dbm_apply(struct st_mysql *m, const char *fname, const char *sql, size_t len, char *err,
		   size_t errlen);

#endif
