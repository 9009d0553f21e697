/*
 * daemon.c: the daemon's lifecycle around one libevent loop.
 *
 * Start: config -> logging -> loop services (metrics, bus, workers, net,
 * storage, scripts, HTTP) -> plugins in config order -> signals -> ready.
 * SIGTERM/SIGINT: stop accepting (HTTP and plugin listeners), close every
 * charger connection once its queued output is written, wait for that up to
 * [core] shutdown_timeout, then unload plugins in reverse order and exit.
 * SIGHUP: parse the file again; if it is valid, swap it in, re-apply the log
 * level, tell plugins (reload callback) and reload tenant scripts. Charger
 * connections are untouched. An invalid file is reported and ignored.
 */
#include "abi2.h"
#include "core.h"
#include "db.h"
#include "log.h"
#include "script.h"
#include "scripting.h"
#include "store.h"
#include "tz.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

void evcs_sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= 108)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t len = strlen(path);
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */
	ssize_t r = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	(void)r;
	close(fd);
}

void evcs_core_set_ready(evcs_core_t *core, int ready, const char *why)
{
	if (core->ready != ready)
		evcs_log(ready ? EVCS_LOG_NOTICE : EVCS_LOG_WARNING, "core", 0, NULL, "%s%s%s",
			 ready ? "ready" : "not ready", why && *why ? ": " : "", why ? why : "");
	core->ready = ready;
	snprintf(core->not_ready, sizeof core->not_ready, "%s", ready ? "" : (why ? why : "?"));
}

static int apply_logging(const evcs_conf_t *conf, char *err, size_t errlen)
{
	const char *lv = evcs_conf_get(conf, "core", "log_level", "info");
	int level = evcs_log_parse_level(lv);
	if (level < 0) {
		snprintf(err, errlen, "%s: [core] log_level '%s' is not one of err, warning, notice, info, debug",
			 conf->path, lv);
		return -1;
	}
	const char *tg = evcs_conf_get(conf, "core", "log_target", "stderr");
	if (strcmp(tg, "stderr") != 0 && strcmp(tg, "syslog") != 0) {
		snprintf(err, errlen, "%s: [core] log_target '%s' must be stderr or syslog", conf->path, tg);
		return -1;
	}
	evcs_log_setup(level, strcmp(tg, "syslog") == 0, "evcsd");
	return 0;
}

static void drain_check(evutil_socket_t fd, short what, void *arg);

const char *evcs_core_schema_dir(const evcs_conf_t *conf)
{
	/* the environment wins so a source tree can run without installing */
	const char *env = getenv("EVCS_SCHEMA_DIR");
	if (env && *env)
		return env;
	return evcs_conf_get(conf, "core", "schema_dir", EVCS_SCHEMADIR);
}

static int64_t m_db(void *ud, int which)
{
	evcs_db_stats_t st;
	evcs_db_stats((evcs_db_t *)ud, &st);
	switch (which) {
	case 0: return (int64_t)st.queue_depth;
	case 1: return (int64_t)st.jobs_done;
	case 2: return (int64_t)st.jobs_failed;
	case 3: return st.latency_count ? (int64_t)(st.latency_us_sum / st.latency_count) : 0;
	case 4: return st.connected;
	case 5: return (int64_t)st.batch_rows_written;
	case 6: return (int64_t)st.reconnects;
	default: return (int64_t)st.jobs_rejected;
	}
}
static int64_t m_db_depth(void *ud) { return m_db(ud, 0); }
static int64_t m_db_done(void *ud) { return m_db(ud, 1); }
static int64_t m_db_failed(void *ud) { return m_db(ud, 2); }
static int64_t m_db_lat(void *ud) { return m_db(ud, 3); }
static int64_t m_db_conn(void *ud) { return m_db(ud, 4); }
static int64_t m_db_batch(void *ud) { return m_db(ud, 5); }
static int64_t m_db_reconn(void *ud) { return m_db(ud, 6); }
static int64_t m_db_rej(void *ud) { return m_db(ud, 7); }

static void health_tick(evutil_socket_t fd, short what, void *arg)
{
	evcs_core_t *core = arg;
	if (!core->db || core->draining)
		return;
	evcs_db_stats_t st;
	evcs_db_stats(core->db, &st);
	if (st.connected == 0)
		evcs_core_set_ready(core, 0, "database unreachable");
	else if (!core->ready)
		evcs_core_set_ready(core, 1, "database connected");
}

/* Open the data layer: the schema must be exactly the one this build knows.
 * An unreachable database is not fatal (chargers are still served, records
 * wait un-acknowledged); a schema newer or older than ours is. */
static int open_database(evcs_core_t *core, char *err, size_t errlen)
{
	evcs_db_config_t dc;
	if (!evcs_conf_section(core->conf, "database", NULL)) {
		evcs_warn("core", "no [database] section: running without storage (piles cannot log in)");
		return 0;
	}
	if (evcs_db_config_from_conf(core->conf, &dc, err, errlen) != 0)
		return -1;
	int dbv = 0, codev = 0;
	char why[512];
	int sc = evcs_db_schema_check(&dc, evcs_core_schema_dir(core->conf), &dbv, &codev, why,
				      sizeof why);
	if (sc == EVCS_ENOTSUP || sc == EVCS_EINVAL) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	if (sc == EVCS_EUNAVAIL)
		evcs_warn("core", "database not reachable at start (%s); starting anyway and retrying", why);
	else
		evcs_notice("core", "database schema version %d", dbv);
	if (evcs_db_open(&dc, core->base, &core->db) != EVCS_OK) {
		snprintf(err, errlen, "cannot start the database layer");
		return -1;
	}
	evcs_metrics_t *m = core->metrics;
	evcs_metric_fn(m, "core", "evcs_db_queue_depth", "Database jobs waiting for a connection", EVCS_METRIC_GAUGE, m_db_depth, core->db);
	evcs_metric_fn(m, "core", "evcs_db_jobs_total{outcome=\"ok\"}", "Database jobs completed", EVCS_METRIC_COUNTER, m_db_done, core->db);
	evcs_metric_fn(m, "core", "evcs_db_jobs_total{outcome=\"failed\"}", "Database jobs completed", EVCS_METRIC_COUNTER, m_db_failed, core->db);
	evcs_metric_fn(m, "core", "evcs_db_jobs_total{outcome=\"rejected\"}", "Database jobs completed", EVCS_METRIC_COUNTER, m_db_rej, core->db);
	evcs_metric_fn(m, "core", "evcs_db_latency_avg_us", "Mean database job latency, submit to completion", EVCS_METRIC_GAUGE, m_db_lat, core->db);
	evcs_metric_fn(m, "core", "evcs_db_connections", "Live database connections", EVCS_METRIC_GAUGE, m_db_conn, core->db);
	evcs_metric_fn(m, "core", "evcs_db_batch_rows_total", "Rows written by batched inserts", EVCS_METRIC_COUNTER, m_db_batch, core->db);
	evcs_metric_fn(m, "core", "evcs_db_reconnects_total", "Database reconnections", EVCS_METRIC_COUNTER, m_db_reconn, core->db);
	return 0;
}

void evcs_core_shutdown(evcs_core_t *core)
{
	if (core->draining)
		return;
	core->draining = 1;
	evcs_sd_notify("STOPPING=1");
	evcs_notice("core", "shutting down: %zu connection(s) to drain",
		    evcs_net_conn_count(core->net));
	evcs_http_stop_accepting(core->http);
	evcs_net_drain(core->net);
	core->drain_timer = event_new(core->base, -1, EV_PERSIST, drain_check, core);
	struct timeval tv = {0, 20000};
	event_add(core->drain_timer, &tv);
	drain_check(-1, 0, core);
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
	evcs_core_t *core = arg;
	static struct timespec start;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (fd == -1 && what == 0)
		start = now;
	long long el = (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
	size_t left = evcs_net_conn_count(core->net);
	if (left == 0 || el >= core->shutdown_timeout_ms) {
		if (left)
			evcs_warn("core", "%zu connection(s) still open after %lld ms; closing them", left,
				  el);
		event_base_loopexit(core->base, NULL);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	evcs_core_t *core = arg;
	if (sig == SIGHUP) {
		evcs_notice("core", "SIGHUP: reloading %s", core->conf_path);
		evcs_core_reload(core);
		return;
	}
	evcs_notice("core", "%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	if (core->draining) {
		evcs_warn("core", "second signal: exiting without waiting for connections");
		event_base_loopexit(core->base, NULL);
		return;
	}
	evcs_core_shutdown(core);
}

int evcs_core_reload(evcs_core_t *core)
{
	char err[512];
	evcs_conf_t *nc = evcs_conf_load(core->conf_path, err, sizeof err);
	if (!nc) {
		evcs_err("core", "reload refused, keeping the running configuration: %s", err);
		return -1;
	}
	if (apply_logging(nc, err, sizeof err) < 0 ||
	    evcs_core_tz_reload(core, nc, err, sizeof err) < 0) {
		evcs_err("core", "reload refused, keeping the running configuration: %s", err);
		evcs_conf_free(nc);
		return -1;
	}
	const char *ol = evcs_conf_get(core->conf, "http", "listen", "127.0.0.1:8080");
	const char *nl = evcs_conf_get(nc, "http", "listen", "127.0.0.1:8080");
	if (strcmp(ol, nl) != 0)
		evcs_warn("core", "[http] listen changed to %s; takes effect at the next restart", nl);
	evcs_conf_t *old = core->conf;
	core->conf = nc;
	evcs_plugins_reload(core);
	evcs_conf_free(old);
	evcs_event_t ev = {.size = sizeof ev, .type = EVCS_EV_CONFIG_RELOADED};
	evcs_bus_publish(core->bus, &ev, "core");
	evcs_notice("core", "configuration reloaded");
	evcs_sd_notify("READY=1");
	return 0;
}

int evcs_core_start(evcs_core_t *core, const char *conf_path, char *err, size_t errlen)
{
	core->conf_path = strdup(conf_path);
	core->conf = evcs_conf_load(conf_path, err, errlen);
	if (!core->conf)
		return -1;
	if (apply_logging(core->conf, err, errlen) < 0)
		return -1;
	long long workers, sto;
	if (evcs_conf_int(core->conf, "core", "workers", 4, 1, 256, &workers, err, errlen) < 0 ||
	    evcs_conf_int(core->conf, "core", "shutdown_timeout", 10000, 0, 600000, &sto, err,
			  errlen) < 0)
		return -1;
	core->shutdown_timeout_ms = sto;
	core->base = event_base_new();
	core->metrics = evcs_metrics_new();
	if (!core->base || !core->metrics) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	core->bus = evcs_bus_new(core->base);
	core->workers = evcs_workers_new(core->base, (int)workers, 100000);
	core->net = evcs_net_new(core);
	core->store = evcs_store_new(core);
	if (!core->bus || !core->workers || !core->net || !core->store) {
		snprintf(err, errlen, "out of memory starting the core");
		return -1;
	}
	evcs_core_set_ready(core, 0, "starting");
	evcs_script_limits_t lim;
	evcs_script_limits_default(&lim);
	long long v;
	if (evcs_conf_int(core->conf, "scripts", "memory_limit", (long long)lim.mem_bytes, 65536,
			  1LL << 32, &v, err, errlen) < 0)
		return -1;
	lim.mem_bytes = (size_t)v;
	if (evcs_conf_int(core->conf, "scripts", "instruction_limit", (long long)lim.instructions,
			  1000, 1LL << 40, &v, err, errlen) < 0)
		return -1;
	lim.instructions = (uint64_t)v;
	core->scripts = evcs_script_engine_new(&lim);
	if (!core->scripts) {
		snprintf(err, errlen, "cannot create the script engine");
		return -1;
	}
	if (open_database(core, err, errlen) < 0)
		return -1;
	/* local time: [core] timezone, then every tenant's own zone (asynchronously) */
	if (evcs_core_tz_init(core, err, errlen) < 0)
		return -1;
	if (evcs_scripting_init(core) < 0) {
		snprintf(err, errlen, "cannot start tenant scripting");
		return -1;
	}
	if (core->db) {
		evcs_store_register_builtin(core->store);
	}
	core->http = evcs_http_new(core, err, errlen);
	if (!core->http)
		return -1;
	if (core->db && evcs_api_init(core) < 0) {
		snprintf(err, errlen, "cannot start the operator API");
		return -1;
	}
	evcs_api_fill(&core->api);
	if (evcs_plugins_load(core) < 0) {
		snprintf(err, errlen, "a required plugin failed to load (see above)");
		return -1;
	}
	static const int sigs[4] = {SIGTERM, SIGINT, SIGHUP, 0};
	for (int i = 0; sigs[i]; i++) {
		core->sig_ev[i] = evsignal_new(core->base, sigs[i], signal_cb, core);
		evsignal_add(core->sig_ev[i], NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	core->health_timer = event_new(core->base, -1, EV_PERSIST, health_tick, core);
	struct timeval ht = {1, 0};
	event_add(core->health_timer, &ht);
	evcs_core_set_ready(core, 1, NULL);
	evcs_sd_notify("READY=1");
	return 0;
}

void evcs_core_free(evcs_core_t *core)
{
	if (!core)
		return;
	if (core->base)
		evcs_plugins_unload(core);
	evcs_services_free(core);
	for (int i = 0; i < 4; i++)
		if (core->sig_ev[i])
			event_free(core->sig_ev[i]);
	if (core->drain_timer)
		event_free(core->drain_timer);
	if (core->health_timer)
		event_free(core->health_timer);
	if (core->db)
		evcs_api_free(core);
	evcs_http_free(core->http);
	evcs_net_free(core->net);
	evcs_workers_free(core->workers);
	core->workers = NULL; /* tz_tenant.c: a late DB callback must not submit to it */
	/* batches flush into the data layer, which runs its last callbacks inside
	 * close: storage first, then the database */
	if (core->db) {
		evcs_session_free(core);
		evcs_store_builtin_free(core->store);
		evcs_db_close(core->db);
	}
	evcs_core_tz_free(core);
	evcs_store_free(core->store);
	evcs_scripting_free(core);
	evcs_script_engine_free(core->scripts);
	evcs_bus_free(core->bus);
	evcs_metrics_free(core->metrics);
	if (core->base)
		event_base_free(core->base);
	evcs_conf_free(core->conf);
	free(core->conf_path);
	memset(core, 0, sizeof *core);
}
