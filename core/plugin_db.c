/*
 * plugin_db.c: the data layer for plugins (the db_* entries of the ABI 2 API table) and the
 * start-up check of a plugin's own schema. Contract: <evcs/plugin.h>, "data layer (ABI 2)".
 *
 * Every entry is a thin layer over core/db.h: the same worker pool, the same prepared statement
 * caches and the same tenant rule (job_add in db_job.c). What this file adds:
 *   - Callbacks of unloaded plugins are never called. Each submitted job with a callback carries
 *     a small wrapper (owner, cb, ud) linked into a per-core list; plugin_detach calls
 *     evcs_plugin_db_drop_owner, which unlinks the plugin's pending wrappers and marks them
 *     orphaned. When such a job completes (later on the loop, or inside evcs_db_close at
 *     shutdown, after the plugin's code is unmapped) the wrapper is freed and nothing is called.
 *     Orphaned wrappers point at nothing else, so the list may be freed before they complete.
 *   - Installation-wide statements are refused (EVCS_ENOTSUP, one log line) unless the plugin's
 *     ABI 2 descriptor sets EVCS_PLUGIN_F_PLATFORM_DB. A transaction is the data layer's own
 *     evcs_db_txn_t (core code, e.g. the operator API's audit helper, appends to it with
 *     evcs_db_txn_add); the opening plugin and its flags travel inside it (evcs_db_txn_owner).
 *   - No database configured: db_txn_new returns NULL; queries, adds and submits (also on that
 *     NULL transaction) return EVCS_EUNAVAIL.
 * Loop thread only, like the rest of the API table. The schema check is blocking and runs
 * before a plugin's init, while the daemon starts and the loop is not yet running.
 */
#include "abi2.h"
#include "core.h"
#include "db.h"
#include "log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct pdb_call {
	struct pdb_call *prev, *next;
	struct pdb_state *st;       /* NULL once orphaned */
	struct evcs_plugin *owner;  /* NULL once orphaned */
	evcs_db_cb cb;
	void *ud;
};

/* core->plugin_db: the pending calls of loaded plugins (allocated on first use, freed when a
 * plugin unloads and none of anyone's calls is pending) */
struct pdb_state {
	struct pdb_call *head;
};

/* ---- the descriptor's ABI 2 fields ------------------------------------------------------ */
static int info_has(const evcs_plugin_info_t *in, size_t end)
{
	return in && in->abi_major >= 2 && in->size >= end;
}

uintptr_t evcs_plugin_info_flags(const evcs_plugin_info_t *in)
{
	if (!info_has(in, offsetof(evcs_plugin_info_t, flags) + sizeof in->flags))
		return 0;
	return in->flags;
}

const evcs_migration_t *evcs_plugin_info_migrations(const evcs_plugin_info_t *in)
{
	if (!info_has(in, offsetof(evcs_plugin_info_t, migrations) + sizeof in->migrations))
		return NULL;
	return in->migrations;
}

static unsigned plugin_flags(const struct evcs_plugin *p)
{
	return (unsigned)evcs_plugin_info_flags(p->info);
}

/* ---- callback wrappers ----------------------------------------------------------------- */
static struct pdb_call *call_new(struct evcs_plugin *p, evcs_db_cb cb, void *ud)
{
	struct pdb_state *st = p->core->plugin_db;
	if (!st) {
		st = calloc(1, sizeof *st);
		if (!st)
			return NULL;
		p->core->plugin_db = st;
	}
	struct pdb_call *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->st = st;
	w->owner = p;
	w->cb = cb;
	w->ud = ud;
	w->next = st->head;
	if (st->head)
		st->head->prev = w;
	st->head = w;
	return w;
}

static void call_unlink(struct pdb_call *w)
{
	if (!w->st)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		w->st->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->st = NULL;
}

static void call_free(struct pdb_call *w)
{
	call_unlink(w);
	free(w);
}

static void call_done(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		      void *arg)
{
	struct pdb_call *w = arg;
	evcs_db_cb cb = w->owner ? w->cb : NULL;
	void *ud = w->ud;
	call_free(w);
	if (cb)
		cb(status, res, nres, errmsg, ud);
}

void evcs_plugin_db_drop_owner(struct evcs_core *core, struct evcs_plugin *p)
{
	struct pdb_state *st = core->plugin_db;
	if (!st)
		return;
	size_t orphaned = 0;
	for (struct pdb_call *w = st->head, *n; w; w = n) {
		n = w->next;
		if (w->owner != p)
			continue;
		call_unlink(w); /* the job still owns w and frees it when it completes */
		w->owner = NULL;
		w->cb = NULL;
		orphaned++;
	}
	if (orphaned)
		evcs_info(p->name, "%zu database callback(s) pending at unload: dropped", orphaned);
	if (!st->head) {
		free(st);
		core->plugin_db = NULL;
	}
}

/* ---- statements ------------------------------------------------------------------------ */
#define JOB_FLAGS (EVCS_DB_IDEMPOTENT | EVCS_DB_REQUIRE_ROW)

static int refuse_platform(struct evcs_plugin *p, const char *sql)
{
	evcs_err(p->name,
		 "installation-wide statement refused: the plugin's descriptor does not set "
		 "EVCS_PLUGIN_F_PLATFORM_DB: %.120s",
		 sql ? sql : "(null)");
	return EVCS_ENOTSUP;
}

static int query(struct evcs_plugin *p, int64_t tenant_id, int platform, const char *sql,
		 const evcs_db_param_t *params, size_t nparams, unsigned flags, evcs_db_cb cb,
		 void *ud)
{
	if (!p->core->db)
		return EVCS_EUNAVAIL;
	struct pdb_call *w = NULL;
	if (cb && !(w = call_new(p, cb, ud)))
		return EVCS_ENOMEM;
	flags &= JOB_FLAGS;
	int rc = platform ? evcs_db_query_platform(p->core->db, sql, params, nparams, flags,
						   w ? call_done : NULL, w)
			  : evcs_db_query(p->core->db, tenant_id, sql, params, nparams, flags,
					  w ? call_done : NULL, w);
	if (rc && w)
		call_free(w);
	return rc;
}

static int api_db_query(evcs_plugin_t *p, int64_t tenant_id, const char *sql,
			const evcs_db_param_t *params, size_t nparams, unsigned flags, evcs_db_cb cb,
			void *ud)
{
	if (!p)
		return EVCS_EINVAL;
	return query(p, tenant_id, 0, sql, params, nparams, flags, cb, ud);
}

static int api_db_query_platform(evcs_plugin_t *p, const char *sql, const evcs_db_param_t *params,
				 size_t nparams, unsigned flags, evcs_db_cb cb, void *ud)
{
	if (!p)
		return EVCS_EINVAL;
	if (!(plugin_flags(p) & EVCS_PLUGIN_F_PLATFORM_DB))
		return refuse_platform(p, sql);
	return query(p, -1, 1, sql, params, nparams, flags, cb, ud);
}

/* ---- transactions ---------------------------------------------------------------------- */
static evcs_db_txn_t *api_db_txn_new(evcs_plugin_t *p)
{
	if (!p || !p->core->db)
		return NULL;
	evcs_db_txn_t *t = evcs_db_txn_new(p->core->db);
	evcs_db_txn_set_owner(t, p, plugin_flags(p));
	return t;
}

static int api_db_txn_add(evcs_db_txn_t *t, int64_t tenant_id, const char *sql,
			  const evcs_db_param_t *params, size_t nparams, unsigned stmt_flags)
{
	if (!t)
		return EVCS_EUNAVAIL;
	return evcs_db_txn_add(t, tenant_id, sql, params, nparams, stmt_flags & EVCS_DB_REQUIRE_ROW);
}

static int api_db_txn_add_platform(evcs_db_txn_t *t, const char *sql,
				   const evcs_db_param_t *params, size_t nparams,
				   unsigned stmt_flags)
{
	if (!t)
		return EVCS_EUNAVAIL;
	unsigned flags = 0;
	const struct evcs_plugin *owner = evcs_db_txn_owner(t, &flags);
	if (owner && !(flags & EVCS_PLUGIN_F_PLATFORM_DB)) {
		int rc = refuse_platform((struct evcs_plugin *)owner, sql);
		evcs_db_txn_poison(t, rc);
		return rc;
	}
	return evcs_db_txn_add_platform(t, sql, params, nparams, stmt_flags & EVCS_DB_REQUIRE_ROW);
}

static int api_db_txn_submit(evcs_db_txn_t *t, unsigned flags, evcs_db_cb cb, void *ud)
{
	if (!t)
		return EVCS_EUNAVAIL;
	struct evcs_plugin *owner = (struct evcs_plugin *)evcs_db_txn_owner(t, NULL);
	struct pdb_call *w = NULL;
	if (cb && owner && !(w = call_new(owner, cb, ud))) {
		evcs_db_txn_free(t);
		return EVCS_ENOMEM;
	}
	int rc = evcs_db_txn_submit(t, flags & JOB_FLAGS, w ? call_done : cb, w ? (void *)w : ud);
	if (rc && w)
		call_free(w);
	return rc;
}

void evcs_plugin_db_fill(evcs_api_t *a)
{
	a->db_query = api_db_query;
	a->db_query_platform = api_db_query_platform;
	a->db_txn_new = api_db_txn_new;
	a->db_txn_add = api_db_txn_add;
	a->db_txn_add_platform = api_db_txn_add_platform;
	a->db_txn_submit = api_db_txn_submit;
	a->db_txn_free = evcs_db_txn_free;
	a->db_cell = evcs_db_cell;
	a->db_cell_int = evcs_db_cell_i64;
	a->db_col = evcs_db_col;
}

/* ---- the plugin's schema at start ------------------------------------------------------- */
int evcs_plugin_db_check_schema(struct evcs_core *core, struct evcs_plugin *p)
{
	const evcs_migration_t *migs = evcs_plugin_info_migrations(p->info);
	if (!migs || migs[0].version == 0)
		return EVCS_OK;
	const char *name = p->info->name;
	char err[512];
	if (!evcs_conf_section(core->conf, "database", NULL)) {
		evcs_err("plugin",
			 "plugin %s keeps its own tables (schema migrations) and needs a [database] "
			 "section; none is configured",
			 name);
		return EVCS_EUNAVAIL;
	}
	evcs_db_config_t dc;
	if (evcs_db_config_from_conf(core->conf, &dc, err, sizeof err) != 0) {
		evcs_err("plugin", "%s", err);
		return EVCS_EINVAL;
	}
	int dbv = 0, codev = 0;
	int rc = evcs_db_plugin_schema_check(&dc, name, migs, &dbv, &codev, err, sizeof err);
	if (rc == EVCS_EUNAVAIL) {
		evcs_warn("plugin", "plugin %s: cannot check its schema (%s); starting anyway", name, err);
		return EVCS_OK;
	}
	if (rc) {
		evcs_err("plugin", "%s", err);
		return rc;
	}
	evcs_info("plugin", "plugin %s: schema version %d", name, dbv);
	return EVCS_OK;
}
