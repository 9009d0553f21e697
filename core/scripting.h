/*
 * scripting.h: the daemon side of tenant Lua scripts (engine in script.h).
 *
 * - Loads a tenant's scripts the first time the tenant is seen: the shipped
 *   defaults from [core] script_dir, then the tenant's active rows from
 *   tenant_scripts (asynchronously), replacing the defaults slot by slot. A
 *   script that fails its self-tests is logged and the previous one stays.
 * - Dispatches hook-bus events of that tenant to the scripts that subscribed
 *   (lowest priority: after protocol plugins), and calls tick() every 5 s.
 * - Stores the alarms scripts raise/clear (table alarms, idempotent on the open
 *   alarm key) and publishes EVCS_EV_ALARM_RAISED / _CLEARED afterwards.
 * - On SIGHUP (EVCS_EV_CONFIG_RELOADED) reloads every loaded tenant.
 * All on the loop thread; a script call is bounded by the engine's limits.
 */
#ifndef EVCS_SCRIPTING_H
#define EVCS_SCRIPTING_H

#include <stdint.h>

struct evcs_core;
int evcs_scripting_init(struct evcs_core *core);
void evcs_scripting_free(struct evcs_core *core);
/* Make sure a tenant's scripts are loaded (no-op when they are). */
void evcs_scripting_touch(struct evcs_core *core, int64_t tenant);
/* Persist and publish an alarm raised by the core or a plugin (not a script). */
void evcs_alarm_raise(struct evcs_core *core, int64_t tenant, const char *pile, int gun,
		      const char *code, const char *severity, const char *message, const char *source);
void evcs_alarm_clear(struct evcs_core *core, int64_t tenant, const char *pile, int gun,
		      const char *code, const char *source);

#endif
