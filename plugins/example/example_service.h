/*
 * example_service.h: the service the example plugin offers to other plugins (ABI 2
 * api->service_offer / api->service_get), under the name EXAMPLE_SERVICE_NAME.
 *
 * A consumer copies this header, looks the service up at the moment it needs it and checks
 * that a function is inside the table before calling it:
 *
 *     const example_notes_service_t *svc;
 *     void *ctx;
 *     uint32_t ver;
 *     if (api->service_get(p, EXAMPLE_SERVICE_NAME, 1, (const void **)&svc, &ctx, &ver) != EVCS_OK)
 *             ... "not available": the example plugin is not loaded (or too old) ...
 *     else if (EVCS_SERVICE_HAS(example_notes_service_t, svc, notes_created))
 *             n = svc->notes_created(ctx);
 *
 * Versions: 1 = notes_created. Functions are only appended (a later version adds members at the
 * end and raises the version); the table starts with its size like evcs_api_t.
 * Threading: call on the loop thread only. Lifetime: the table and ctx stay valid until the
 * example plugin's cleanup; a plugin loaded after the example may keep them, any other looks
 * them up again for each use.
 */
#ifndef EXAMPLE_SERVICE_H
#define EXAMPLE_SERVICE_H

#include <stdint.h>

#define EXAMPLE_SERVICE_NAME "example.notes"
#define EXAMPLE_SERVICE_VERSION 1

typedef struct example_notes_service {
	uint32_t size; /* sizeof(example_notes_service_t) as the provider built it */
	/* Notes created through POST /api/v1/example/notes since the plugin started, all tenants. */
	uint64_t (*notes_created)(void *ctx);
} example_notes_service_t;

#endif
