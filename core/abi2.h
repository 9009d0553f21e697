/*
 * abi2.h: how the core's modules fill the ABI 2 part of the plugin API table and undo a
 * plugin's registrations when it unloads. Each module owns its own entries:
 *
 *   plugin_db.c   db_* (the data layer for plugins) and plugin schema migrations
 *   api_plugin.c  api_route, req_* (plugin routes on the operator API)
 *   service.c     service_offer, service_get (services between plugins)
 *   session.c     session_* (the protocol-neutral session model)
 *   tz.c          tenant_utc_offset (IANA zones per tenant)
 *
 * evcs_api_fill (plugin.c) calls every *_fill; plugin_detach calls every *_drop_owner after
 * the plugin's cleanup (or failed init), before its handle is freed. Loop thread only.
 */
#ifndef EVCS_ABI2_H
#define EVCS_ABI2_H

#include <evcs/plugin.h>

struct evcs_core;
struct evcs_plugin;

void evcs_plugin_db_fill(evcs_api_t *a);
void evcs_plugin_db_drop_owner(struct evcs_core *core, struct evcs_plugin *p);
/* Before a plugin's init (plugin.c): 0 when it has no migrations or its applied schema version
 * equals its highest migration; otherwise the reason is logged and init must not run (the
 * plugin counts as failed). Blocking: start-up only. */
int evcs_plugin_db_check_schema(struct evcs_core *core, struct evcs_plugin *p);
/* The descriptor's ABI 2 fields, 0/NULL for ABI 1 descriptors or ones too short to hold them. */
uintptr_t evcs_plugin_info_flags(const evcs_plugin_info_t *info);
const evcs_migration_t *evcs_plugin_info_migrations(const evcs_plugin_info_t *info);

void evcs_api_plugin_fill(evcs_api_t *a);
void evcs_api_plugin_drop_owner(struct evcs_core *core, struct evcs_plugin *p);

void evcs_service_fill(evcs_api_t *a);
void evcs_service_drop_owner(struct evcs_core *core, struct evcs_plugin *p);
/* Free the registry (daemon shutdown, after every plugin unloaded). */
void evcs_services_free(struct evcs_core *core);

void evcs_session_fill(evcs_api_t *a);
void evcs_session_drop_owner(struct evcs_core *core, struct evcs_plugin *p);
/* Flush the meter batch and queued closes (daemon shutdown, after the plugins unloaded and
 * before evcs_db_close, which runs their last callbacks). */
void evcs_session_free(struct evcs_core *core);

void evcs_tz_fill(evcs_api_t *a);

#endif
