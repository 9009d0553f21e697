/*
 * example.h: what the example plugin's two files share (internal; not part of the SDK).
 * example.c is the echo-status protocol and the descriptor; notes.c the ABI 2 part (a table
 * of its own, an operator-API route, services). Loop thread only.
 */
#ifndef EXAMPLE_H
#define EXAMPLE_H

#include <evcs/plugin.h>

/* The plugin's schema, generated from schema/NNN_name.sql by evcs-embed-sql (Makefile). */
extern const evcs_migration_t example_migrations[];

struct example_notes;

/* Register GET/POST /api/v1/example/notes and offer the example.notes service. EVCS_OK with
 * *out set, or a negative status (logged); the core drops what was registered when init fails. */
int example_notes_setup(const evcs_api_t *api, evcs_plugin_t *p, struct example_notes **out);
/* Free the state and the requests still waiting for the database (cleanup). NULL is fine. */
void example_notes_free(struct example_notes *n);

#endif
