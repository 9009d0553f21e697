/*
 * api_tenant.c: POST /api/v1/tenants and PATCH /api/v1/tenants/{id} accept "timezone", an IANA
 * zone name (or null = the installation's [core] timezone). Before the generic table handler
 * runs, the zone must exist in the tz database: a name the zone cache does not hold yet is
 * loaded on a worker thread (file I/O never runs on the loop), and an unknown zone is answered
 * 400 {"error":{"code":"invalid","field":"timezone"}}. Once the row is committed, api_crud.c
 * hands the stored zone to the per-tenant cache (evcs_core_tz_tenant_stored), so the next
 * request of that tenant already uses it. Loop thread only, except tz_work.
 */
#include "api.h"
#include "tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tz_check {
	api_ctx_t *c;
	int creating;
	char name[EVCS_TZ_NAME_MAX + 1];
	const evcs_tz_t *z;
	char err[192];
};

static void proceed(api_ctx_t *c, int creating)
{
	if (creating)
		api_crud_create(c);
	else
		api_crud_update(c);
}

static void tz_work(void *ud)
{
	struct tz_check *k = ud;
	k->z = evcs_tz_get(k->name, k->err, sizeof k->err);
}

static void tz_done(void *ud)
{
	struct tz_check *k = ud;
	api_ctx_t *c = k->c;
	c->waiting_cmd = 0;
	if (api_ctx_gone(c)) {
		free(k);
		return;
	}
	if (!k->z)
		api_error(c, 400, "invalid", "timezone", "timezone: %s", k->err);
	else
		proceed(c, k->creating);
	free(k);
}

static void tenant_write(api_ctx_t *c, int creating)
{
	json_t *v = json_object_get(c->body, "timezone");
	const char *name = json_string_value(v);
	if (!name || evcs_tz_cached(name)) { /* absent, null, not a string (refused later), known */
		proceed(c, creating);
		return;
	}
	if (!evcs_tz_valid_name(name)) {
		api_error(c, 400, "invalid", "timezone",
			  "timezone must be an IANA time zone name like Europe/Berlin (at most %d "
			  "characters of A-Z a-z 0-9 / _ + - ., no \"..\")",
			  EVCS_TZ_NAME_MAX);
		return;
	}
	struct tz_check *k = calloc(1, sizeof *k);
	if (!k) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	k->c = c;
	k->creating = creating;
	snprintf(k->name, sizeof k->name, "%s", name);
	/* like a pile command: freed at once by evcs_api_free when the server stops first */
	c->waiting_cmd = 1;
	if (evcs_workers_submit(c->core->workers, tz_work, tz_done, k) != 0) {
		c->waiting_cmd = 0;
		free(k);
		api_error(c, 503, "unavailable", NULL, "busy, try again");
	}
}

void api_op_tenant_create(api_ctx_t *c) { tenant_write(c, 1); }

void api_op_tenant_update(api_ctx_t *c) { tenant_write(c, 0); }
