/*
 * tests/plugins/tp_service.c: a second plugin that consumes the example plugin's service, for
 * tests/test_example_plugin.sh (built there out of tree, like the example: pkg-config
 * evcs-plugin only, plus plugins/example/example_service.h for the service's table).
 *
 * GET /tp_service/status (an unauthenticated HTTP route, text/plain) looks the service up on
 * every request, as a consumer that may outlive its provider should, and answers one line per
 * lookup:
 *   example.notes v1: available (version N) notes_created=K
 *   example.notes v1: not available
 *   example.notes v2: not available          (the example offers version 1 only)
 * Configuration: none ([plugin tp_service] with file = tp_service.so). Loop thread only.
 */
#include <evcs/plugin.h>

#include "example_service.h"

#include <stdio.h>

static const evcs_api_t *api;

/* One line about the lookup of EXAMPLE_SERVICE_NAME with at least min_version. */
static int lookup_line(evcs_plugin_t *p, uint32_t min_version, char *out, size_t outlen)
{
	const void *table;
	void *ctx;
	uint32_t version;
	int rc = api->service_get(p, EXAMPLE_SERVICE_NAME, min_version, &table, &ctx, &version);
	if (rc != EVCS_OK)
		return snprintf(out, outlen, "%s v%u: not available\n", EXAMPLE_SERVICE_NAME,
				(unsigned)min_version);
	const example_notes_service_t *svc = table;
	if (!EVCS_SERVICE_HAS(example_notes_service_t, svc, notes_created))
		return snprintf(out, outlen, "%s v%u: available (version %u) without notes_created\n",
				EXAMPLE_SERVICE_NAME, (unsigned)min_version, (unsigned)version);
	return snprintf(out, outlen, "%s v%u: available (version %u) notes_created=%llu\n",
			EXAMPLE_SERVICE_NAME, (unsigned)min_version, (unsigned)version,
			(unsigned long long)svc->notes_created(ctx));
}

static void http_status(evcs_http_req_t *req, void *ud)
{
	evcs_plugin_t *p = ud;
	char body[512];
	int n = lookup_line(p, 1, body, sizeof body);
	if (n < 0 || (size_t)n >= sizeof body)
		n = 0;
	int m = lookup_line(p, 2, body + n, sizeof body - (size_t)n);
	if (m > 0 && (size_t)(n + m) < sizeof body)
		n += m;
	api->http_reply(req, 200, "text/plain; charset=utf-8", body, (size_t)n);
}

static int tp_init(evcs_plugin_t *p, const evcs_api_t *a)
{
	api = a;
	if (!EVCS_API_HAS(a, service_get)) {
		a->log(p, EVCS_LOG_ERR, 0, NULL, "this core has no services (ABI 2 needed)");
		return EVCS_ENOTSUP;
	}
	return api->http_route(p, "GET", "/tp_service/status", http_status, p);
}

static void tp_cleanup(evcs_plugin_t *p) { (void)p; }

static const evcs_plugin_info_t tp_info = {
    .size = sizeof(evcs_plugin_info_t),
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "tp_service",
    .version = "1.0",
    .description = "test consumer of the example plugin's service",
    .init = tp_init,
    .cleanup = tp_cleanup,
};

EVCS_PLUGIN_DECLARE(tp_info)
