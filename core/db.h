/*
 * db.h: the core's MariaDB data layer. The event loop never waits on the database.
 *
 * Shape: a pool of `pool` worker threads, each owning one MYSQL connection and its cache of
 * prepared statements (Connector/C, mysql_stmt_* only: values are always bound, never spliced
 * into SQL). Jobs go into one bounded FIFO queue; a worker runs a job and hands the finished
 * job back to the libevent loop thread, where the caller's callback runs.
 *
 * Threading: every function here is called from the loop thread that owns the event_base given
 * to evcs_db_open(), except evcs_db_migrate() and evcs_db_schema_check(), which are blocking,
 * open their own connection, and are meant for start-up (`evcsd --migrate`, the version check)
 * before the loop runs. Callbacks always run on the loop thread, never inside the submit call.
 * Workers wake the loop through a pipe, so the base needs no evthread locking (the daemon's
 * evthread_use_pthreads() does no harm). Do not call evcs_db_close() from inside a db callback.
 *
 * Tenant isolation lives in one function (job_add in db_job.c): a tenant-scoped statement
 * (evcs_db_query, evcs_db_txn_add) must contain at least one marker `tenant_id = ?` (any
 * qualifier such as `s.tenant_id = ?`, backticks and spacing allowed; not <=, !=, <=>). The layer
 * binds the tenant id at every marker and the caller's values fill the remaining placeholders in
 * order, so the caller can never supply a tenant value itself. For SELECT/DELETE and for inserts
 * written `INSERT INTO t SET tenant_id = ?, col = ?` (or `INSERT INTO t (tenant_id, ...) VALUES
 * (?, ...)`) the marker comes first, i.e. the tenant is the FIRST parameter; in
 * `UPDATE t SET a = ? WHERE tenant_id = ? AND id = ?` the caller passes (a, id). SQL without a
 * marker is refused with EVCS_EINVAL and an error log line, before anything is queued. The check
 * is a guard against forgetting the scope, not a SQL parser: `tenant_id = ? OR 1` passes.
 * Installation-wide statements (tenants, unclaimed piles, token lookup by hash, batches) go
 * through the explicitly named *_platform calls. For every call the number of values must equal
 * the placeholders (minus markers), checked at submit.
 *
 * Memory: parameters (including strings) are copied at submit; the caller's buffers may be
 * reused at once. Results are owned by the layer and valid only during the callback.
 *
 * Errors (status given to a callback, or returned by a submit call):
 *   EVCS_OK        success
 *   EVCS_EINVAL    bad SQL/arguments, refused tenant scope, value count != placeholders
 *   EVCS_EBUSY     (submit only) the queue holds queue_max jobs; the callback will not run
 *   EVCS_EUNAVAIL  the database could not be reached within unavail_ms of the job's submission,
 *                  or the connection was lost mid-job and the job could not safely be retried
 *   EVCS_EEXIST    duplicate key (ER_DUP_ENTRY): the idempotency signal for records, ledger rows
 *   EVCS_ENOENT    a statement flagged EVCS_DB_REQUIRE_ROW matched no row (transaction rolled back)
 *   EVCS_ERR       any other SQL error (message in errmsg, also logged)
 * A submit call that returns non-zero never calls the callback.
 *
 * Retry on connection loss: the worker reconnects with backoff (100 ms doubling to 5 s) and
 * prepares statements again on the new connection. A job that failed because the connection
 * dropped is run once more when that cannot apply it twice: the loss happened before anything
 * was executed, or inside an explicit transaction before COMMIT was sent (the server rolls it
 * back), or the job is read-only (single SELECT) or flagged EVCS_DB_IDEMPOTENT. A deadlock
 * (InnoDB rolled the whole transaction back) is also retried once.
 */
#ifndef EVCS_DB_H
#define EVCS_DB_H

#include <evcs/plugin.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct evcs_db_config {
	const char *host;      /* TCP host; ignored when socket is set */
	unsigned port;         /* 0 = 3306 */
	const char *socket;    /* unix socket path; preferred when non-NULL and non-empty */
	const char *user;
	const char *password;
	const char *name;      /* database */
	int pool;              /* worker connections; <= 0 means 4 */
	int connect_timeout_s; /* per connect attempt and read/write timeout base; <= 0 means 5 */
	int queue_max;         /* queued jobs before EVCS_EBUSY; <= 0 means 10000 */
	int unavail_ms;        /* how long a job may wait for a connection; <= 0 means 10000 */
} evcs_db_config_t;

/* Parameters, results, callbacks and flags (evcs_db_param_t, EVCS_DB_INT..., evcs_db_result_t,
 * evcs_db_cb, EVCS_DB_IDEMPOTENT, EVCS_DB_REQUIRE_ROW) are part of the plugin ABI: <evcs/plugin.h>. */

/* Borrowed cell text, NULL for SQL NULL or out of range. */
const char *evcs_db_cell(const evcs_db_result_t *r, size_t row, unsigned col);
/* Column index by name, -1 if absent. */
int evcs_db_col(const evcs_db_result_t *r, const char *name);
/* Parse a cell as int64: 0 ok, EVCS_ENOENT for NULL/out of range, EVCS_EINVAL if not an integer. */
int evcs_db_cell_i64(const evcs_db_result_t *r, size_t row, unsigned col, int64_t *out);

typedef struct evcs_db evcs_db_t;
typedef struct evcs_db_batch evcs_db_batch_t;

/* Start the pool. Workers connect in the background (a database that is down at start-up is
 * not an error: jobs wait up to unavail_ms, then fail EVCS_EUNAVAIL). Strings in cfg are copied.
 * Returns 0 and *out, or EVCS_EINVAL (bad config) / EVCS_ENOMEM / EVCS_ERR. */
int evcs_db_open(const evcs_db_config_t *cfg, struct event_base *base, evcs_db_t **out);
/* Stop accepting jobs, let the workers finish the queue, run the remaining callbacks (inside
 * this call, on the calling loop thread), close connections, free. Batches must be freed first. */
void evcs_db_close(evcs_db_t *db);

/* Tenant-scoped single statement (see the isolation rule above). tenant_id > 0. cb may be NULL
 * (fire and forget; failures are still logged). */
int evcs_db_query(evcs_db_t *db, int64_t tenant_id, const char *sql, const evcs_db_param_t *params,
		  size_t nparams, unsigned flags, evcs_db_cb cb, void *ud);
/* Installation-wide single statement: no tenant check. */
int evcs_db_query_platform(evcs_db_t *db, const char *sql, const evcs_db_param_t *params,
			   size_t nparams, unsigned flags, evcs_db_cb cb, void *ud);

/* Transactions: statements run in order inside one transaction; the first failure rolls back
 * everything and is the job's status. Results come back one per statement. A parameter
 * EVCS_DB_REFID(k) binds statement k's last insert id (k < this statement's index).
 * An add that fails (EVCS_EINVAL/ENOMEM) poisons the txn: submit then fails with that status. */
evcs_db_txn_t *evcs_db_txn_new(evcs_db_t *db);
int evcs_db_txn_add(evcs_db_txn_t *t, int64_t tenant_id, const char *sql,
		    const evcs_db_param_t *params, size_t nparams, unsigned stmt_flags);
int evcs_db_txn_add_platform(evcs_db_txn_t *t, const char *sql, const evcs_db_param_t *params,
			     size_t nparams, unsigned stmt_flags);
/* Consumes t in every case. */
int evcs_db_txn_submit(evcs_db_txn_t *t, unsigned flags, evcs_db_cb cb, void *ud);
void evcs_db_txn_free(evcs_db_txn_t *t); /* abandon without submitting */

/* Internal (plugin_db.c): who opened a transaction. A plugin's transaction is the data layer's
 * own evcs_db_txn_t (core code such as the operator API's audit helper appends to it with
 * evcs_db_txn_add); the owner (an opaque pointer, never dereferenced here) and its rights
 * (EVCS_PLUGIN_F_* flags) travel inside it so the plugin API can check installation-wide adds.
 * Core code's transactions have owner NULL. evcs_db_txn_poison makes the next submit fail with
 * status (the first poison wins). */
void evcs_db_txn_set_owner(evcs_db_txn_t *t, const void *owner, unsigned owner_flags);
const void *evcs_db_txn_owner(const evcs_db_txn_t *t, unsigned *owner_flags);
void evcs_db_txn_poison(evcs_db_txn_t *t, int status);

/* ---- batching (meter samples, last-seen updates) --------------------------------
 * Rows accumulate on the loop and are written as one multi-row statement
 *   <head> VALUES (?,..,?),(?,..,?)... <tail>
 * when max_rows rows are pending or max_ms after the first pending row, whichever comes first.
 * Example: head "INSERT INTO meter_samples (session_id, ts_ms, kwh, ...)", ncols 10, tail
 * "ON DUPLICATE KEY UPDATE kwh = VALUES(kwh)" (or NULL). Batches are installation-wide (rows
 * carry their own tenant columns where the table has one). A flush whose submit fails with
 * EVCS_EBUSY keeps its rows for the next flush, up to 8 * max_rows pending; beyond that the
 * oldest rows are dropped, counted in evcs_db_stats.batch_rows_dropped and logged.
 * done (optional) runs on the loop after each flush job with its status and row count. */
typedef void (*evcs_db_batch_cb)(int status, size_t rows, void *ud);
evcs_db_batch_t *evcs_db_batch_new(evcs_db_t *db, const char *name, const char *head,
				   unsigned ncols, const char *tail, size_t max_rows,
				   unsigned max_ms, evcs_db_batch_cb done, void *ud);
/* Append one row of ncols values (copied). EVCS_EINVAL on a REFID value. */
int evcs_db_batch_add(evcs_db_batch_t *b, const evcs_db_param_t *row);
/* Submit what is pending now. Returns 0, or the submit error (rows kept). */
int evcs_db_batch_flush(evcs_db_batch_t *b);
size_t evcs_db_batch_pending(const evcs_db_batch_t *b);
/* Flush, then free. The done callback still runs for the final flush (until evcs_db_close). */
void evcs_db_batch_free(evcs_db_batch_t *b);

/* Fill cfg from the [database] section of a parsed config (strings borrowed from conf; they
 * live as long as it does). Defaults: host localhost, port 3306, user evcs, name evcs, pool 4,
 * connect_timeout 5, queue_max 10000, unavail_ms = 2 * connect_timeout. EVCS_EINVAL with a
 * "file:line: ..." message on a bad number. */
struct evcs_conf;
int evcs_db_config_from_conf(const struct evcs_conf *conf, evcs_db_config_t *cfg, char *err,
			     size_t errlen);

/* ---- metrics ---------------------------------------------------------------- */
#define EVCS_DB_LAT_BUCKETS 12
/* Upper bounds (ms) of the latency histogram buckets; the last bucket is +Inf. */
extern const unsigned evcs_db_lat_bounds_ms[EVCS_DB_LAT_BUCKETS - 1];

typedef struct evcs_db_stats {
	uint64_t queue_depth;     /* jobs waiting */
	uint64_t in_flight;       /* jobs on workers */
	uint64_t jobs_done;       /* completed with EVCS_OK */
	uint64_t jobs_failed;     /* completed with an error */
	uint64_t jobs_rejected;   /* refused at submit (EVCS_EBUSY) */
	uint64_t jobs_retried;    /* re-run after a lost connection */
	uint64_t reconnects;      /* successful connects after the first */
	uint64_t latency_us_sum;  /* submit to completion, all completed jobs */
	uint64_t latency_count;
	uint64_t latency_bucket[EVCS_DB_LAT_BUCKETS]; /* non-cumulative counts */
	uint64_t batch_rows_written;
	uint64_t batch_rows_dropped;
	int workers;
	int connected; /* workers holding a live connection */
} evcs_db_stats_t;

void evcs_db_stats(evcs_db_t *db, evcs_db_stats_t *out);

/* ---- schema migrations (blocking; start-up only) ---------------------------------
 * schema_dir holds NNN_name.sql files (NNN = version, 1-based, contiguous). Each file is sent
 * as one multi-statement batch (schema/README.md gives the rules) and recorded in
 * schema_version. A file that fails leaves its version marked 'applying': later runs and the
 * check refuse to continue until an operator repairs the database and deletes that row. */
#define EVCS_DB_SCHEMA_VERSION 10 /* highest migration this build's SQL is written against */

/* Apply every file newer than the database. from and to (may be NULL) get the version before and
 * after. 0 on success (also when nothing was to do); EVCS_ENOTSUP if the database is newer than
 * the files; EVCS_EUNAVAIL if it cannot connect; EVCS_EINVAL for bad files; EVCS_ERR on SQL
 * failure. err gets a one-line reason. */
int evcs_db_migrate(const evcs_db_config_t *cfg, const char *schema_dir, int *from, int *to,
		    char *err, size_t errlen);
/* Compare the database's version with the highest file in schema_dir (or with
 * EVCS_DB_SCHEMA_VERSION when schema_dir is NULL). 0 when equal; EVCS_ENOTSUP when the database
 * is newer (refuse to run); EVCS_EINVAL when it is older or a migration is unfinished (run
 * `evcsd --migrate`); EVCS_EUNAVAIL when unreachable. err always gets a readable sentence. */
int evcs_db_schema_check(const evcs_db_config_t *cfg, const char *schema_dir, int *db_version,
			 int *code_version, char *err, size_t errlen);
/* Highest NNN in schema_dir, 0 if none, EVCS_EINVAL if the directory is unreadable or the
 * numbering has gaps or duplicates. */
int evcs_db_schema_files_version(const char *schema_dir, char *err, size_t errlen);

/* ---- plugin migrations (blocking; start-up only; db_plugin_migrate.c) ----------------------
 * A plugin's schema is the array of evcs_migration_t in its descriptor (versions 1..N in order,
 * ended by {0}), recorded per plugin in plugin_schema_version (schema/008). `plugin` is the
 * descriptor's name; every table a migration creates, alters, drops, renames to or truncates
 * (also CREATE INDEX/TRIGGER ... ON, views and sequences) must be named `<plugin>_...`;
 * RENAME TABLE [IF EXISTS] old TO <plugin>_new accepts any old name. */

/* Check the array without a database: contiguous versions from 1, names and SQL present, no
 * DELIMITER, table prefixes. Returns N (0 for NULL or empty) or EVCS_EINVAL with err set. */
int evcs_db_plugin_migrations_valid(const char *plugin, const evcs_migration_t *migs, char *err,
				    size_t errlen);
/* Apply the plugin's migrations newer than its applied version, each marked 'applying' before
 * and 'applied' after (same safety rule and lock as evcs_db_migrate). Return codes as there:
 * 0 (also when current), EVCS_ENOTSUP database newer than the plugin, EVCS_EINVAL bad array or
 * an unfinished migration, EVCS_EUNAVAIL, EVCS_ERR on SQL failure (err names the migration and
 * the statement). */
int evcs_db_migrate_plugin(const evcs_db_config_t *cfg, const char *plugin,
			   const evcs_migration_t *migs, int *from, int *to, char *err,
			   size_t errlen);
/* Start-up check: 0 when the applied version equals the plugin's highest; EVCS_EINVAL when it is
 * missing or older ("plugin X: schema version A, plugin needs B: run `evcsd --migrate`") or a
 * migration is unfinished; EVCS_ENOTSUP when the database is newer (the plugin is older than
 * its data); EVCS_EUNAVAIL when unreachable. err always gets a sentence. */
int evcs_db_plugin_schema_check(const evcs_db_config_t *cfg, const char *plugin,
				const evcs_migration_t *migs, int *db_version, int *code_version,
				char *err, size_t errlen);

/* Internal (db.c, migrate.c): a configured, connected blocking handle (utf8mb4, UTC session,
 * strict SQL mode) or NULL with err set. multi != 0 enables CLIENT_MULTI_STATEMENTS, which only
 * the migration runner uses. */
struct st_mysql;
struct st_mysql *evcs_db_connect_raw(const evcs_db_config_t *cfg, int multi, char *err,
				     size_t errlen);

#endif
