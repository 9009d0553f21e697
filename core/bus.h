/*
 * bus.h: the hook bus and command routing.
 *
 * Events: subscribers per event type, ordered by priority then subscription
 * order. Dispatch runs on the loop thread, synchronously, and allocates
 * nothing: subscriber lists are arrays kept sorted at subscribe time.
 * Subscribing or unsubscribing from inside a callback is allowed; it takes
 * effect for the next dispatch (a removed subscriber is skipped at once).
 * Vetoable events (SESSION_START, COMMAND_REQUESTED) stop at the first VETO;
 * a VETO on any other event is logged and ignored, as is any unexpected
 * return value. Publishing from a callback nests up to EVCS_BUS_MAX_DEPTH;
 * deeper publishes are refused and logged, so a loop of subscribers cannot
 * overflow the stack. A slow subscriber is logged with its owner.
 *
 * Commands: the plugin that owns a pile claims it; a requester sends a
 * command; the owner answers with evcs_bus_command_reply. The bus enforces
 * the timeout and calls the requester's done callback exactly once
 * (asynchronously, never from inside evcs_bus_command_send).
 */
#ifndef EVCS_BUS_H
#define EVCS_BUS_H

#include <evcs/plugin.h>

struct event_base;
typedef struct evcs_bus evcs_bus_t;

#define EVCS_BUS_MAX_DEPTH 8

typedef struct evcs_bus_stats {
	uint64_t published[EVCS_EV__COUNT];
	uint64_t delivered;
	uint64_t vetoed;
	uint64_t subscriber_errors;
	uint64_t refused_depth;
	uint64_t commands_sent, commands_ok, commands_failed, commands_timeout;
	uint64_t commands_pending;
	size_t subscribers;
	size_t claimed_piles;
} evcs_bus_stats_t;

evcs_bus_t *evcs_bus_new(struct event_base *base);
void evcs_bus_free(evcs_bus_t *b);

/* owner: a stable string (plugin name, "core", "lua") used in logs and bulk removal */
int evcs_bus_subscribe(evcs_bus_t *b, uint32_t type, int priority, evcs_bus_cb cb, void *ud,
		       const char *owner, evcs_sub_t **out);
void evcs_bus_unsubscribe(evcs_sub_t *s);
void evcs_bus_unsubscribe_owner(evcs_bus_t *b, const char *owner);
/* EVCS_OK, EVCS_VETO (vetoable events), EVCS_EINVAL (bad event), EVCS_EBUSY (too deep) */
int evcs_bus_publish(evcs_bus_t *b, const evcs_event_t *ev, const char *source);
int evcs_event_vetoable(uint32_t type);
const char *evcs_event_name(uint32_t type);
/* Look up a field of an event by name; NULL when absent. */
const evcs_field_t *evcs_event_field(const evcs_event_t *ev, const char *name);
const char *evcs_event_get_str(const evcs_event_t *ev, const char *name);
int64_t evcs_event_get_int(const evcs_event_t *ev, const char *name, int64_t def);

/* commands */
int evcs_bus_pile_claim(evcs_bus_t *b, const char *owner, int64_t tenant, const char *pile,
			evcs_cmd_handler h, void *ud);
/* Releases the claim if held by owner (pending commands fail with EVCS_EOFFLINE). */
void evcs_bus_pile_release(evcs_bus_t *b, const char *owner, const char *pile);
void evcs_bus_release_owner(evcs_bus_t *b, const char *owner);
/* Who owns a pile (NULL when offline); tenant in *tenant when non-NULL. */
const char *evcs_bus_pile_owner(evcs_bus_t *b, const char *pile, int64_t *tenant);
int evcs_bus_command_send(evcs_bus_t *b, const evcs_command_t *c, unsigned timeout_ms,
			  evcs_cmd_done done, void *ud, const char *requester);
void evcs_bus_command_reply(evcs_cmd_t *cmd, int status, const char *result_json);
/* The command's own fields (for owners answering later). */
const evcs_command_t *evcs_bus_command_of(evcs_cmd_t *cmd);

void evcs_bus_get_stats(evcs_bus_t *b, evcs_bus_stats_t *st);
/* Warn when one subscriber call takes longer than this (default 50 ms). */
void evcs_bus_set_slow_threshold(evcs_bus_t *b, unsigned ms);

#endif
