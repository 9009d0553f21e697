/* store.c: dispatch of named storage operations; see store.h. */
#include "store.h"

#include "core.h"
#include "log.h"
#include "strmap.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

struct evcs_store_call {
	evcs_store_t *store;
	char *caller;
	char *op;
	evcs_store_done done;
	void *ud;
	int status;
	char *result;
	struct event *deliver;
	int finished;
	struct evcs_store_call *next, *prev;
};

struct evcs_store {
	evcs_core_t *core;
	evcs_strmap_t *ops;
	struct evcs_store_call *pending;
	evcs_metric_t *m_calls, *m_errors;
};

evcs_store_t *evcs_store_new(evcs_core_t *core)
{
	evcs_store_t *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->core = core;
	s->ops = evcs_strmap_new();
	s->m_calls = evcs_metric_new(core->metrics, "core", "evcs_store_calls_total",
				     "Storage operations called by plugins", EVCS_METRIC_COUNTER);
	s->m_errors = evcs_metric_new(core->metrics, "core", "evcs_store_errors_total",
				      "Storage operations that failed", EVCS_METRIC_COUNTER);
	return s;
}

static void call_free(struct evcs_store_call *c)
{
	evcs_store_t *s = c->store;
	if (c->prev)
		c->prev->next = c->next;
	else if (s->pending == c)
		s->pending = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->deliver)
		event_free(c->deliver);
	free(c->caller);
	free(c->op);
	free(c->result);
	free(c);
}

void evcs_store_free(evcs_store_t *s)
{
	if (!s)
		return;
	while (s->pending)
		call_free(s->pending);
	evcs_strmap_free(s->ops);
	free(s);
}

int evcs_store_register(evcs_store_t *s, const char *op, evcs_store_op_fn fn)
{
	int err;
	evcs_strmap_put(s->ops, op, *(void **)&fn, &err);
	return err ? EVCS_ENOMEM : EVCS_OK;
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evcs_store_call *c = arg;
	if (c->status != EVCS_OK)
		evcs_metric_add(c->store->m_errors, 1);
	if (c->done)
		c->done(c->status, c->result, c->ud);
	call_free(c);
}

void evcs_store_finish(evcs_store_call_t *c, int status, json_t *result)
{
	if (!c || c->finished) {
		json_decref(result);
		return;
	}
	c->finished = 1;
	c->status = status;
	c->result = result ? json_dumps(result, JSON_COMPACT) : NULL;
	json_decref(result);
	/* Always deliver from a fresh loop turn: the caller's callback never runs
	 * inside its own store() call, whatever the operation did. */
	c->deliver = evtimer_new(c->store->core->base, deliver_cb, c);
	struct timeval zero = {0, 0};
	if (!c->deliver || evtimer_add(c->deliver, &zero) < 0)
		deliver_cb(-1, 0, c);
}

void evcs_store_fail(evcs_store_call_t *c, int status, const char *field, const char *msg)
{
	json_t *o = json_pack("{s:s, s:s}", "error", evcs_status_str(status), "message",
			      msg ? msg : "");
	if (field)
		json_object_set_new(o, "field", json_string(field));
	if (status == EVCS_EINVAL)
		evcs_log(EVCS_LOG_WARNING, "store", 0, NULL, "%s from %s: %s%s%s", c->op, c->caller,
			 field ? field : "", field ? ": " : "", msg ? msg : "");
	evcs_store_finish(c, status, o);
}

const char *evcs_store_caller(evcs_store_call_t *c) { return c->caller; }
evcs_core_t *evcs_store_core(evcs_store_t *s) { return s->core; }

int evcs_store_call(evcs_store_t *s, const char *caller, const char *op, const char *args_json,
		    evcs_store_done done, void *ud)
{
	if (!s || !op)
		return EVCS_EINVAL;
	struct evcs_store_call *c = calloc(1, sizeof *c);
	if (!c)
		return EVCS_ENOMEM;
	c->store = s;
	c->caller = strdup(caller ? caller : "?");
	c->op = strdup(op);
	c->done = done;
	c->ud = ud;
	c->next = s->pending;
	if (s->pending)
		s->pending->prev = c;
	s->pending = c;
	evcs_metric_add(s->m_calls, 1);
	void *fp = evcs_strmap_get(s->ops, op);
	if (!fp) {
		evcs_store_fail(c, s->core->db ? EVCS_ENOTSUP : EVCS_EUNAVAIL, NULL,
				s->core->db ? "unknown storage operation" : "no database configured");
		return EVCS_OK;
	}
	json_error_t je;
	json_t *args = json_loads(args_json && *args_json ? args_json : "{}", JSON_REJECT_DUPLICATES,
				  &je);
	if (!args || !json_is_object(args)) {
		json_decref(args);
		evcs_store_fail(c, EVCS_EINVAL, NULL, "arguments must be a JSON object");
		return EVCS_OK;
	}
	evcs_store_op_fn fn;
	*(void **)&fn = fp;
	fn(s, c, args);
	json_decref(args);
	return EVCS_OK;
}

void evcs_store_drop_owner(evcs_store_t *s, const char *owner)
{
	if (!s)
		return;
	for (struct evcs_store_call *c = s->pending; c; c = c->next)
		if (strcmp(c->caller, owner) == 0)
			c->done = NULL;
}
