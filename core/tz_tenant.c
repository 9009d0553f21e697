/*
 * tz_tenant.c: the zone of each tenant, cached on the core context (core->tz); the default
 * from [core] timezone; the plugin API's tenant_utc_offset. Contract in tz.h.
 *
 * The cache maps tenant id -> zone for tenants whose tenants.timezone is set; every other tenant
 * gets the default. It is filled asynchronously: a platform query reads (id, timezone) of every
 * tenant that names a zone, a worker thread loads the zone files (evcs_tz_get: file I/O never
 * runs on the loop), and the loop swaps the new map in. That runs at start, every
 * TZ_REFRESH_S seconds and on SIGHUP. The operator API writes through evcs_core_tz_tenant_stored
 * as soon as a tenant row is committed; such an entry outlives a refresh that started before it
 * (the refresh read the older row). A zone that cannot be loaded is logged once and the tenant
 * falls back to the default. Loop thread only, except the worker's part (job rows only).
 */
#include "abi2.h"
#include "core.h"
#include "db.h"
#include "log.h"
#include "script.h"
#include "tz.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_REFRESH_S 300

struct tz_entry {
	int64_t id;
	const evcs_tz_t *z;               /* NULL: the default applies */
	char name[EVCS_TZ_NAME_MAX + 1]; /* as stored; "" = NULL */
	uint64_t stamp;                  /* API store sequence that set it; 0 = from a refresh */
};

struct tz_row {
	int64_t id;
	char name[EVCS_TZ_NAME_MAX + 1];
	const evcs_tz_t *z;
	char err[192];
};

struct tz_job {
	struct tz_state *st;
	uint64_t seq_at_start;
	struct tz_row *rows;
	size_t n;
};

struct tz_state {
	evcs_core_t *core;
	const evcs_tz_t *def;
	struct tz_entry *e; /* sorted by id */
	size_t n, cap;
	struct event *timer;
	uint64_t seq;
	int busy;  /* a refresh is in flight */
	int again; /* refresh once more when it lands */
	struct tz_job *job;
};

static struct tz_state *ST(evcs_core_t *core) { return core ? core->tz : NULL; }

static const evcs_tz_t *builtin_default(void)
{
	const evcs_tz_t *z = evcs_tz_get(EVCS_TZ_DEFAULT, NULL, 0);
	return z ? z : evcs_tz_fixed(8 * 3600);
}

int evcs_tz_conf_default(const evcs_conf_t *conf, const evcs_tz_t **out, char *err,
			 size_t errlen)
{
	const char *name = evcs_conf_get(conf, "core", "timezone", NULL);
	char why[256];
	const evcs_tz_t *z = evcs_tz_get(name ? name : EVCS_TZ_DEFAULT, why, sizeof why);
	if (z) {
		*out = z;
		return 0;
	}
	int line = 0;
	const evcs_conf_section_t *s = evcs_conf_section(conf, "core", NULL);
	for (size_t i = 0; s && i < s->nkv; i++)
		if (!strcmp(s->kv[i].key, "timezone"))
			line = s->kv[i].line;
	const char *path = conf && conf->path ? conf->path : "config";
	if (line)
		snprintf(err, errlen, "%s:%d: [core] timezone: %s", path, line, why);
	else
		snprintf(err, errlen, "%s: [core] timezone (default %s): %s; install tzdata", path,
			 EVCS_TZ_DEFAULT, why);
	return -1;
}

/* ---- the map ------------------------------------------------------------------------------ */
static struct tz_entry *find(struct tz_state *st, int64_t id, size_t *pos)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (st->e[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return lo < st->n && st->e[lo].id == id ? &st->e[lo] : NULL;
}

static struct tz_entry *upsert(struct tz_state *st, int64_t id)
{
	size_t pos;
	struct tz_entry *e = find(st, id, &pos);
	if (e)
		return e;
	if (st->n == st->cap) {
		size_t nc = st->cap ? st->cap * 2 : 16;
		struct tz_entry *ne = realloc(st->e, nc * sizeof *ne);
		if (!ne)
			return NULL;
		st->e = ne;
		st->cap = nc;
	}
	memmove(&st->e[pos + 1], &st->e[pos], (st->n - pos) * sizeof *st->e);
	st->n++;
	memset(&st->e[pos], 0, sizeof *st->e);
	st->e[pos].id = id;
	return &st->e[pos];
}

const evcs_tz_t *evcs_core_default_tz(evcs_core_t *core)
{
	struct tz_state *st = ST(core);
	return st && st->def ? st->def : builtin_default();
}

const evcs_tz_t *evcs_core_tenant_tz(evcs_core_t *core, int64_t tenant_id)
{
	struct tz_state *st = ST(core);
	if (!st)
		return builtin_default();
	struct tz_entry *e = find(st, tenant_id, NULL);
	return e && e->z ? e->z : st->def;
}

void evcs_core_tz_tenant_stored(evcs_core_t *core, int64_t tenant_id, const char *name)
{
	struct tz_state *st = ST(core);
	if (!st || tenant_id <= 0)
		return;
	const evcs_tz_t *z = NULL;
	if (name && *name && !(z = evcs_tz_cached(name))) {
		/* not loaded yet (the row kept a zone this request did not name): read it off the
		 * loop with the next refresh */
		evcs_core_tz_refresh(core);
		return;
	}
	struct tz_entry *e = upsert(st, tenant_id);
	if (!e)
		return;
	e->z = z;
	snprintf(e->name, sizeof e->name, "%s", z ? name : "");
	e->stamp = ++st->seq;
}

/* ---- refresh: DB -> worker (zone files) -> loop ------------------------------------------- */
static void job_free(struct tz_job *j)
{
	if (j) {
		free(j->rows);
		free(j);
	}
}

static void load_work(void *ud)
{
	struct tz_job *j = ud;
	for (size_t i = 0; i < j->n; i++)
		j->rows[i].z = evcs_tz_get(j->rows[i].name, j->rows[i].err, sizeof j->rows[i].err);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct tz_entry *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	/* the newer API write first, so dedup keeps it */
	return x->stamp > y->stamp ? -1 : x->stamp < y->stamp;
}

static void load_done(void *ud)
{
	struct tz_job *j = ud;
	struct tz_state *st = j->st;
	st->job = NULL;
	st->busy = 0;
	size_t cap = st->n + j->n, n = 0;
	struct tz_entry *ne = calloc(cap ? cap : 1, sizeof *ne);
	if (!ne) {
		job_free(j);
		return;
	}
	for (size_t i = 0; i < st->n; i++)
		if (st->e[i].stamp > j->seq_at_start)
			ne[n++] = st->e[i];
	for (size_t i = 0; i < j->n; i++) {
		struct tz_row *r = &j->rows[i];
		struct tz_entry *old = find(st, r->id, NULL);
		if (!r->z && !(old && !old->z && !strcmp(old->name, r->name)))
			evcs_log(EVCS_LOG_WARNING, "tz", r->id, NULL,
				 "tenants.timezone '%s' cannot be used (%s); local time is %s", r->name,
				 r->err, evcs_tz_name(st->def));
		ne[n].id = r->id;
		ne[n].z = r->z;
		snprintf(ne[n].name, sizeof ne[n].name, "%s", r->name);
		ne[n].stamp = 0;
		n++;
	}
	qsort(ne, n, sizeof *ne, cmp_entry);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (k == 0 || ne[k - 1].id != ne[i].id)
			ne[k++] = ne[i];
	free(st->e);
	st->e = ne;
	st->n = k;
	st->cap = cap ? cap : 1;
	job_free(j);
	if (st->again) {
		st->again = 0;
		evcs_core_tz_refresh(st->core);
	}
}

static void rows_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		    void *ud)
{
	struct tz_job *j = ud;
	struct tz_state *st = j->st;
	if (status != EVCS_OK || nres < 1 || !st->core->workers) {
		if (status != EVCS_OK)
			evcs_warn("tz", "cannot read tenants.timezone: %s", errmsg ? errmsg : "?");
		st->busy = 0;
		job_free(j);
		return;
	}
	j->rows = calloc(res[0].nrows ? res[0].nrows : 1, sizeof *j->rows);
	if (!j->rows) {
		st->busy = 0;
		job_free(j);
		return;
	}
	for (size_t r = 0; r < res[0].nrows; r++) {
		const char *name = evcs_db_cell(&res[0], r, 1);
		if (evcs_db_cell_i64(&res[0], r, 0, &j->rows[j->n].id) != 0 || !name)
			continue;
		snprintf(j->rows[j->n].name, sizeof j->rows[j->n].name, "%s", name);
		j->n++;
	}
	st->job = j;
	if (evcs_workers_submit(st->core->workers, load_work, load_done, j) != EVCS_OK) {
		st->job = NULL;
		st->busy = 0;
		job_free(j);
	}
}

void evcs_core_tz_refresh(evcs_core_t *core)
{
	struct tz_state *st = ST(core);
	if (!st || !core->db || !core->workers)
		return;
	if (st->busy) {
		st->again = 1;
		return;
	}
	struct tz_job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	j->st = st;
	j->seq_at_start = st->seq;
	st->busy = 1;
	if (evcs_db_query_platform(core->db,
				   "SELECT id, timezone FROM tenants WHERE timezone IS NOT NULL "
				   "ORDER BY id",
				   NULL, 0, 0, rows_cb, j) != EVCS_OK) {
		st->busy = 0;
		job_free(j);
	}
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct tz_state *st = arg;
	evcs_core_tz_refresh(st->core);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */
static const evcs_tz_t *script_tz(int64_t tenant, void *ud)
{
	return evcs_core_tenant_tz(ud, tenant);
}

int evcs_core_tz_init(evcs_core_t *core, char *err, size_t errlen)
{
	struct tz_state *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->core = core;
	if (evcs_tz_conf_default(core->conf, &st->def, err, errlen) < 0) {
		free(st);
		return -1;
	}
	core->tz = st;
	if (core->scripts)
		evcs_script_engine_set_tz(core->scripts, script_tz, core);
	if (core->base && core->db) {
		st->timer = event_new(core->base, -1, EV_PERSIST, tick, st);
		struct timeval tv = {TZ_REFRESH_S, 0};
		if (st->timer)
			event_add(st->timer, &tv);
	}
	evcs_core_tz_refresh(core);
	return 0;
}

int evcs_core_tz_reload(evcs_core_t *core, const evcs_conf_t *nconf, char *err, size_t errlen)
{
	const evcs_tz_t *z;
	if (evcs_tz_conf_default(nconf, &z, err, errlen) < 0)
		return -1;
	struct tz_state *st = ST(core);
	if (st) {
		if (st->def != z)
			evcs_notice("tz", "default time zone is now %s", evcs_tz_name(z));
		st->def = z;
		evcs_core_tz_refresh(core);
	}
	return 0;
}

void evcs_core_tz_free(evcs_core_t *core)
{
	struct tz_state *st = ST(core);
	if (!st)
		return;
	if (core->scripts)
		evcs_script_engine_set_tz(core->scripts, NULL, NULL);
	if (st->timer)
		event_free(st->timer);
	/* a job whose done() never ran (the pool is gone by now: its threads are joined) */
	job_free(st->job);
	free(st->e);
	free(st);
	core->tz = NULL;
}

/* ---- plugin API ----------------------------------------------------------------------------- */
static int api_tenant_utc_offset(evcs_plugin_t *p, int64_t tenant_id, int64_t t_ms,
				 int *offset_s)
{
	if (!p || !offset_s || tenant_id < 0)
		return EVCS_EINVAL;
	int64_t t = t_ms >= 0 ? t_ms / 1000 : -((-t_ms + 999) / 1000);
	*offset_s = evcs_tz_offset_at(evcs_core_tenant_tz(p->core, tenant_id), t);
	return EVCS_OK;
}

void evcs_tz_fill(evcs_api_t *a) { a->tenant_utc_offset = api_tenant_utc_offset; }
