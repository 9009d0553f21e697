/* scripting.c: see scripting.h. */
#include "scripting.h"

#include "core.h"
#include "db.h"
#include "log.h"
#include "script.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TENANTS_TRACKED 65536

struct scripting {
	evcs_core_t *core;
	int64_t *tenants; /* loaded tenants (sorted) */
	size_t n, cap;
	struct event *tick;
	evcs_sub_t *subs[EVCS_EV__COUNT];
};

static struct scripting *S(evcs_core_t *core) { return core->scripting; }

static int tenant_loaded(struct scripting *s, int64_t t)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->tenants[mid] == t)
			return 1;
		if (s->tenants[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int tenant_add(struct scripting *s, int64_t t)
{
	if (s->n >= MAX_TENANTS_TRACKED)
		return -1;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		int64_t *nt = realloc(s->tenants, nc * sizeof *nt);
		if (!nt)
			return -1;
		s->tenants = nt;
		s->cap = nc;
	}
	size_t i = s->n;
	while (i > 0 && s->tenants[i - 1] > t) {
		s->tenants[i] = s->tenants[i - 1];
		i--;
	}
	s->tenants[i] = t;
	s->n++;
	return 0;
}

static void script_log(int64_t tenant, const char *slot, int level, const char *msg, void *ud)
{
	char comp[48];
	snprintf(comp, sizeof comp, "lua:%s", slot ? slot : "?");
	evcs_log(level, comp, tenant, NULL, "%s", msg);
}

/* ---- alarms ------------------------------------------------------------ */

struct alarm_job {
	evcs_core_t *core;
	int64_t tenant;
	int gun;
	int raise;
	char pile[24], code[64], severity[16], source[32];
	char message[512];
};

static void alarm_stored(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			 void *ud)
{
	struct alarm_job *j = ud;
	if (status != EVCS_OK && status != EVCS_EEXIST) {
		evcs_log(EVCS_LOG_ERR, "alarm", j->tenant, j->pile[0] ? j->pile : NULL,
			 "could not store alarm %s: %s (%s)", j->code, evcs_status_str(status), errmsg);
	} else if (j->core->bus) {
		/* an alarm that was already open is not raised again on the bus */
		int fresh = status == EVCS_OK && res && res[0].affected > 0;
		if (fresh) {
			evcs_field_t f[] = {EVCS_FS("code", j->code), EVCS_FS("severity", j->severity),
					    EVCS_FS("message", j->message), EVCS_FS("source", j->source)};
			evcs_event_t ev = {.size = sizeof ev,
					   .type = j->raise ? EVCS_EV_ALARM_RAISED : EVCS_EV_ALARM_CLEARED,
					   .tenant_id = j->tenant, .pile = j->pile[0] ? j->pile : NULL,
					   .gun = j->gun, .fields = f, .nfields = j->raise ? 4 : 1};
			if (!j->raise)
				f[1] = f[3], ev.nfields = 2;
			evcs_log(j->raise ? EVCS_LOG_NOTICE : EVCS_LOG_INFO, "alarm", j->tenant,
				 j->pile[0] ? j->pile : NULL, "%s %s%s%s", j->raise ? "raised" : "cleared",
				 j->code, j->raise ? ": " : "", j->raise ? j->message : "");
			evcs_bus_publish(j->core->bus, &ev, "alarms");
		}
	}
	free(j);
}

static void alarm_submit(evcs_core_t *core, int64_t tenant, const char *pile, int gun,
			 const char *code, const char *severity, const char *message,
			 const char *source, int raise)
{
	if (!core->db || tenant <= 0 || !code)
		return;
	struct alarm_job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	j->core = core;
	j->tenant = tenant;
	j->gun = gun;
	j->raise = raise;
	snprintf(j->pile, sizeof j->pile, "%s", pile ? pile : "");
	snprintf(j->code, sizeof j->code, "%s", code);
	snprintf(j->severity, sizeof j->severity, "%s", severity ? severity : "warning");
	snprintf(j->message, sizeof j->message, "%s", message ? message : "");
	snprintf(j->source, sizeof j->source, "%s", source ? source : "core");
	int r;
	if (raise) {
		/* INSERT IGNORE: the open-alarm key makes a repeat of an open alarm a no-op */
		/* the tenant is bound by the data layer at the marker; the composite
		 * foreign key (tenant_id, pile_id) refuses another tenant's pile */
		evcs_db_param_t p[] = {EVCS_DB_STR(j->pile), EVCS_DB_INT(gun), EVCS_DB_STR(j->code),
				       EVCS_DB_STR(j->severity), EVCS_DB_STR(j->message),
				       EVCS_DB_STR(j->source)};
		r = evcs_db_query(core->db, tenant,
				  "INSERT IGNORE INTO alarms SET tenant_id = ?, "
				  "pile_id = (SELECT p.id FROM piles p WHERE p.serial = ?), "
				  "gun_no = ?, code = ?, severity = ?, message = ?, source = ?",
				  p, 6, 0, alarm_stored, j);
	} else {
		evcs_db_param_t p[] = {EVCS_DB_STR(j->code), EVCS_DB_INT(gun), EVCS_DB_STR(j->pile)};
		r = evcs_db_query(core->db, tenant,
				  "UPDATE alarms SET state = 'cleared', "
				  "cleared_ms = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) "
				  "WHERE tenant_id = ? AND code = ? AND gun_no = ? AND state <> 'cleared' AND "
				  "IFNULL(pile_id, 0) = IFNULL((SELECT p.id FROM piles p WHERE p.serial = ?), 0)",
				  p, 3, 0, alarm_stored, j);
	}
	if (r != EVCS_OK) {
		evcs_log(EVCS_LOG_ERR, "alarm", tenant, pile, "cannot queue alarm %s: %s", code,
			 evcs_status_str(r));
		free(j);
	}
}

void evcs_alarm_raise(evcs_core_t *core, int64_t tenant, const char *pile, int gun,
		      const char *code, const char *severity, const char *message, const char *source)
{
	alarm_submit(core, tenant, pile, gun, code, severity, message, source, 1);
}

void evcs_alarm_clear(evcs_core_t *core, int64_t tenant, const char *pile, int gun,
		      const char *code, const char *source)
{
	alarm_submit(core, tenant, pile, gun, code, NULL, NULL, source, 0);
}

static void on_script_raise(const evcs_script_alarm_t *a, void *ud)
{
	evcs_alarm_raise(ud, a->tenant_id, a->pile, a->gun, a->code,
			 evcs_alarm_severity_name(a->severity), a->message, "script");
}

static void on_script_clear(const evcs_script_alarm_t *a, void *ud)
{
	evcs_alarm_clear(ud, a->tenant_id, a->pile, a->gun, a->code, "script");
}

/* ---- loading ------------------------------------------------------------ */

struct load_job {
	evcs_core_t *core;
	int64_t tenant;
};

static void db_scripts_loaded(int status, const evcs_db_result_t *res, size_t nres,
			      const char *errmsg, void *ud)
{
	struct load_job *j = ud;
	evcs_core_t *core = j->core;
	if (status != EVCS_OK) {
		evcs_log(EVCS_LOG_WARNING, "scripts", j->tenant, NULL,
			 "cannot read tenant scripts (%s); defaults stay", evcs_status_str(status));
		free(j);
		return;
	}
	for (size_t r = 0; res && r < res[0].nrows; r++) {
		const char *kind = evcs_db_cell(&res[0], r, 0);
		const char *src = evcs_db_cell(&res[0], r, 1);
		const char *name = evcs_db_cell(&res[0], r, 2);
		size_t len = res[0].lens[r * res[0].ncols + 1];
		const char *slot = kind && !strcmp(kind, "alarm") ? "alarms" : "tariff";
		char chunk[96], *err = NULL;
		snprintf(chunk, sizeof chunk, "tenant %lld/%s", (long long)j->tenant, name ? name : slot);
		if (evcs_script_load(core->scripts, j->tenant, slot, src, len, chunk, &err) != EVCS_OK) {
			evcs_log(EVCS_LOG_ERR, "scripts", j->tenant, NULL,
				 "stored %s script rejected, previous one keeps serving: %s", slot,
				 err ? err : "?");
		} else {
			evcs_log(EVCS_LOG_INFO, "scripts", j->tenant, NULL, "loaded %s script %s", slot,
				 chunk);
		}
		free(err);
	}
	free(j);
}

static void load_tenant(evcs_core_t *core, int64_t tenant)
{
	const char *dir = evcs_conf_get(core->conf, "core", "script_dir", EVCS_SCRIPTDIR);
	char *err = NULL;
	if (evcs_script_load_tenant(core->scripts, tenant, NULL, dir, &err) != EVCS_OK)
		evcs_log(EVCS_LOG_ERR, "scripts", tenant, NULL, "default scripts from %s: %s", dir,
			 err ? err : "?");
	free(err);
	if (!core->db)
		return;
	struct load_job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	j->core = core;
	j->tenant = tenant;
	if (evcs_db_query(core->db, tenant,
			  "SELECT kind, source, name FROM tenant_scripts WHERE tenant_id = ? AND active = 1 "
			  "ORDER BY kind, name",
			  NULL, 0, 0, db_scripts_loaded, j) != EVCS_OK)
		free(j);
}

void evcs_scripting_touch(evcs_core_t *core, int64_t tenant)
{
	struct scripting *s = S(core);
	if (!s || tenant <= 0 || tenant_loaded(s, tenant))
		return;
	if (tenant_add(s, tenant) < 0)
		return;
	load_tenant(core, tenant);
}

/* ---- dispatch ------------------------------------------------------------- */

static int on_event(const evcs_event_t *ev, void *ud)
{
	evcs_core_t *core = ud;
	if (ev->tenant_id <= 0)
		return EVCS_DEFER;
	evcs_scripting_touch(core, ev->tenant_id);
	if (!evcs_script_subscribed(core->scripts, ev->tenant_id, ev->type))
		return EVCS_DEFER;
	evcs_script_callbacks_t cb = {on_script_raise, on_script_clear, core};
	/* errors are logged by the engine (once per failed call); other tenants
	 * and other subscribers are unaffected */
	evcs_script_on_event(core->scripts, ev->tenant_id, ev, &cb, NULL);
	return EVCS_OK;
}

static int on_reload(const evcs_event_t *ev, void *ud)
{
	evcs_core_t *core = ud;
	struct scripting *s = S(core);
	for (size_t i = 0; i < s->n; i++)
		load_tenant(core, s->tenants[i]);
	evcs_notice("scripts", "reloaded scripts of %zu tenant(s)", s->n);
	return EVCS_OK;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	evcs_core_t *core = arg;
	struct scripting *s = S(core);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	evcs_script_callbacks_t cb = {on_script_raise, on_script_clear, core};
	for (size_t i = 0; i < s->n; i++)
		if (evcs_script_subscribed(core->scripts, s->tenants[i], EVCS_SCRIPT_EV_TICK))
			evcs_script_tick(core->scripts, s->tenants[i], now, &cb, NULL);
}

int evcs_scripting_init(evcs_core_t *core)
{
	struct scripting *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->core = core;
	core->scripting = s;
	evcs_script_engine_set_log(core->scripts, script_log, core);
	for (uint32_t t = 1; t < EVCS_EV__COUNT; t++) {
		if (t == EVCS_EV_CONFIG_RELOADED)
			evcs_bus_subscribe(core->bus, t, EVCS_PRIO_LAST, on_reload, core, "lua", &s->subs[t]);
		else if (evcs_script_event_name(t))
			evcs_bus_subscribe(core->bus, t, EVCS_PRIO_LAST, on_event, core, "lua", &s->subs[t]);
	}
	s->tick = event_new(core->base, -1, EV_PERSIST, tick_cb, core);
	struct timeval tv = {5, 0};
	event_add(s->tick, &tv);
	return 0;
}

void evcs_scripting_free(evcs_core_t *core)
{
	struct scripting *s = S(core);
	if (!s)
		return;
	if (s->tick)
		event_free(s->tick);
	free(s->tenants);
	free(s);
	core->scripting = NULL;
}
