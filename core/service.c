/*
 * service.c: named, versioned services between plugins (ABI 2: service_offer, service_get).
 *
 * A provider offers a table (starting with its uint32_t size) and a ctx under a name and a
 * version; a consumer asks for a name and the lowest version it can use and gets the table
 * and ctx, or EVCS_ENOENT ("not available"), which is not an error. One provider per name:
 * a second offer of the same name is refused (EVCS_EEXIST) and logged, so which plugin serves
 * "payment" never depends on load order. The registry hangs off the core context; a provider's
 * entries go when it unloads (evcs_service_drop_owner).
 * Threading: loop thread only.
 */
#include "abi2.h"
#include "core.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct service {
	char *name;
	uint32_t version;
	const void *table;
	void *ctx;
	struct evcs_plugin *owner;
	struct service *next;
};

static int valid_service_name(const char *n)
{
	if (!n || !*n || strlen(n) > 64)
		return 0;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_' || *n == '.'))
			return 0;
	return 1;
}

static int api_service_offer(evcs_plugin_t *p, const char *name, uint32_t version,
			     const void *table, void *ctx)
{
	if (!p || !valid_service_name(name) || !table || version == 0 ||
	    *(const uint32_t *)table < sizeof(uint32_t)) {
		evcs_err(p ? p->name : "plugin",
			 "service_offer: invalid service (name [a-z0-9_.]+, version > 0, table with "
			 "its size first)");
		return EVCS_EINVAL;
	}
	for (struct service *s = p->core->services; s; s = s->next)
		if (!strcmp(s->name, name)) {
			evcs_err(p->name, "service \"%s\" is already offered by plugin %s; not offered again",
				 name, s->owner->name);
			return EVCS_EEXIST;
		}
	struct service *s = calloc(1, sizeof *s);
	if (!s || !(s->name = strdup(name))) {
		free(s);
		return EVCS_ENOMEM;
	}
	s->version = version;
	s->table = table;
	s->ctx = ctx;
	s->owner = p;
	s->next = p->core->services;
	p->core->services = s;
	evcs_info(p->name, "offers service %s version %u", name, version);
	return EVCS_OK;
}

static int api_service_get(evcs_plugin_t *p, const char *name, uint32_t min_version,
			   const void **table, void **ctx, uint32_t *version)
{
	if (table)
		*table = NULL;
	if (ctx)
		*ctx = NULL;
	if (version)
		*version = 0;
	if (!p || !name || !table)
		return EVCS_EINVAL;
	for (struct service *s = p->core->services; s; s = s->next) {
		if (strcmp(s->name, name) != 0)
			continue;
		if (s->version < min_version) {
			evcs_info(p->name, "service %s: plugin %s offers version %u, %u needed", name,
				  s->owner->name, s->version, min_version);
			return EVCS_ENOENT;
		}
		*table = s->table;
		if (ctx)
			*ctx = s->ctx;
		if (version)
			*version = s->version;
		return EVCS_OK;
	}
	return EVCS_ENOENT;
}

void evcs_service_fill(evcs_api_t *a)
{
	a->service_offer = api_service_offer;
	a->service_get = api_service_get;
}

void evcs_service_drop_owner(struct evcs_core *core, struct evcs_plugin *p)
{
	struct service **pp = &core->services;
	while (*pp) {
		struct service *s = *pp;
		if (s->owner == p) {
			*pp = s->next;
			free(s->name);
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

void evcs_services_free(struct evcs_core *core)
{
	while (core->services) {
		struct service *s = core->services;
		core->services = s->next;
		free(s->name);
		free(s);
	}
}
