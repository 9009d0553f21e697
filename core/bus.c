/* bus.c: see bus.h for the contract. */
#include "bus.h"

#include "log.h"
#include "strmap.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct evcs_sub {
	evcs_bus_t *bus;
	uint32_t type;
	int priority;
	uint64_t seq;
	evcs_bus_cb cb;
	void *ud;
	char *owner;
	int dead;
};

struct sublist {
	evcs_sub_t **v;
	size_t n, cap;
};

struct claim {
	char *owner;
	int64_t tenant;
	evcs_cmd_handler h;
	void *ud;
};

struct evcs_cmd {
	evcs_bus_t *bus;
	evcs_command_t c; /* strings below are owned copies */
	char *pile, *name, *args, *owner, *requester;
	evcs_cmd_done done;
	void *ud;
	struct event *timer;
	struct event *defer; /* delivers an immediate failure asynchronously */
	int defer_status;
	int finished;       /* done() has been called */
	int owner_holds;    /* the owner accepted it and has not replied */
	struct evcs_cmd *next, *prev;
};

struct evcs_bus {
	struct event_base *base;
	struct sublist lists[EVCS_EV__COUNT];
	struct sublist pending; /* subscribed during a dispatch */
	uint64_t seq;
	int depth;
	int dirty; /* dead subscribers to compact after dispatch */
	unsigned slow_ms;
	evcs_strmap_t *claims;
	struct evcs_cmd *cmds; /* in flight, for release/cleanup */
	evcs_bus_stats_t st;
};

static const char *const event_names[EVCS_EV__COUNT] = {
    [EVCS_EV_NONE] = "none",
    [EVCS_EV_PILE_ONLINE] = "pile_online",
    [EVCS_EV_PILE_OFFLINE] = "pile_offline",
    [EVCS_EV_GUN_STATUS] = "gun_status",
    [EVCS_EV_METER_SAMPLE] = "meter_sample",
    [EVCS_EV_SESSION_START] = "session_start",
    [EVCS_EV_SESSION_STARTED] = "session_started",
    [EVCS_EV_SESSION_STOPPED] = "session_stopped",
    [EVCS_EV_TRANSACTION_CLOSED] = "transaction_closed",
    [EVCS_EV_PAYMENT_SETTLED] = "payment_settled",
    [EVCS_EV_ALARM_RAISED] = "alarm_raised",
    [EVCS_EV_ALARM_CLEARED] = "alarm_cleared",
    [EVCS_EV_COMMAND_REQUESTED] = "command_requested",
    [EVCS_EV_PILE_FAULT] = "pile_fault",
    [EVCS_EV_TARIFF_CHANGED] = "tariff_changed",
    [EVCS_EV_CONFIG_RELOADED] = "config_reloaded",
    [EVCS_EV_LOGIN_REFUSED] = "login_refused",
};

const char *evcs_event_name(uint32_t type)
{
	return type < EVCS_EV__COUNT && event_names[type] ? event_names[type] : "unknown";
}

int evcs_event_vetoable(uint32_t type)
{
	return type == EVCS_EV_SESSION_START || type == EVCS_EV_COMMAND_REQUESTED;
}

evcs_bus_t *evcs_bus_new(struct event_base *base)
{
	evcs_bus_t *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->base = base;
	b->slow_ms = 50;
	b->claims = evcs_strmap_new();
	if (!b->claims) {
		free(b);
		return NULL;
	}
	return b;
}

static void free_claim(const char *k, void *v, void *ud)
{
	struct claim *c = v;
	free(c->owner);
	free(c);
}

static void cmd_free(struct evcs_cmd *cmd);

void evcs_bus_free(evcs_bus_t *b)
{
	if (!b)
		return;
	while (b->cmds) {
		struct evcs_cmd *c = b->cmds;
		b->cmds = c->next;
		cmd_free(c);
	}
	for (int t = 0; t < EVCS_EV__COUNT; t++) {
		for (size_t i = 0; i < b->lists[t].n; i++) {
			free(b->lists[t].v[i]->owner);
			free(b->lists[t].v[i]);
		}
		free(b->lists[t].v);
	}
	for (size_t i = 0; i < b->pending.n; i++) {
		free(b->pending.v[i]->owner);
		free(b->pending.v[i]);
	}
	free(b->pending.v);
	evcs_strmap_each(b->claims, free_claim, NULL);
	evcs_strmap_free(b->claims);
	free(b);
}

static int list_insert(struct sublist *l, evcs_sub_t *s)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 4;
		evcs_sub_t **nv = realloc(l->v, ncap * sizeof *nv);
		if (!nv)
			return EVCS_ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	size_t i = l->n;
	while (i > 0 && l->v[i - 1]->priority > s->priority) {
		l->v[i] = l->v[i - 1];
		i--;
	}
	l->v[i] = s;
	l->n++;
	return EVCS_OK;
}

int evcs_bus_subscribe(evcs_bus_t *b, uint32_t type, int priority, evcs_bus_cb cb, void *ud,
		       const char *owner, evcs_sub_t **out)
{
	if (!b || !cb || type == EVCS_EV_NONE || type >= EVCS_EV__COUNT)
		return EVCS_EINVAL;
	evcs_sub_t *s = calloc(1, sizeof *s);
	if (!s)
		return EVCS_ENOMEM;
	s->bus = b;
	s->type = type;
	s->priority = priority;
	s->seq = ++b->seq;
	s->cb = cb;
	s->ud = ud;
	s->owner = strdup(owner ? owner : "?");
	/* While a dispatch is running, the lists must not shift under it: a new
	 * subscriber waits in `pending` and joins when the outermost dispatch ends. */
	struct sublist *l = b->depth > 0 ? &b->pending : &b->lists[type];
	if (!s->owner || list_insert(l, s) != EVCS_OK) {
		free(s->owner);
		free(s);
		return EVCS_ENOMEM;
	}
	if (b->depth > 0)
		b->dirty = 1;
	b->st.subscribers++;
	if (out)
		*out = s;
	return EVCS_OK;
}

static void compact_all(evcs_bus_t *b);

void evcs_bus_unsubscribe(evcs_sub_t *s)
{
	if (!s || s->dead)
		return;
	s->dead = 1;
	s->bus->dirty = 1;
	s->bus->st.subscribers--;
	if (s->bus->depth == 0)
		compact_all(s->bus);
}

void evcs_bus_unsubscribe_owner(evcs_bus_t *b, const char *owner)
{
	for (int t = 0; t <= EVCS_EV__COUNT; t++) {
		struct sublist *l = t < EVCS_EV__COUNT ? &b->lists[t] : &b->pending;
		for (size_t i = 0; i < l->n; i++) {
			evcs_sub_t *s = l->v[i];
			if (!s->dead && strcmp(s->owner, owner) == 0) {
				s->dead = 1;
				b->st.subscribers--;
				b->dirty = 1;
			}
		}
	}
	if (b->depth == 0 && b->dirty)
		compact_all(b);
}

static void compact_all(evcs_bus_t *b)
{
	for (int t = 0; t < EVCS_EV__COUNT; t++) {
		struct sublist *l = &b->lists[t];
		size_t w = 0;
		for (size_t r = 0; r < l->n; r++) {
			if (l->v[r]->dead) {
				free(l->v[r]->owner);
				free(l->v[r]);
			} else {
				l->v[w++] = l->v[r];
			}
		}
		l->n = w;
	}
	for (size_t i = 0; i < b->pending.n; i++) {
		evcs_sub_t *s = b->pending.v[i];
		if (s->dead || list_insert(&b->lists[s->type], s) != EVCS_OK) {
			if (!s->dead) {
				b->st.subscribers--;
				evcs_log(EVCS_LOG_ERR, "bus", 0, NULL,
					 "out of memory adding a subscriber of %s owned by %s",
					 evcs_event_name(s->type), s->owner);
			}
			free(s->owner);
			free(s);
		}
	}
	b->pending.n = 0;
	b->dirty = 0;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int evcs_bus_publish(evcs_bus_t *b, const evcs_event_t *ev_in, const char *source)
{
	if (!b || !ev_in || ev_in->type == EVCS_EV_NONE || ev_in->type >= EVCS_EV__COUNT ||
	    ev_in->size < offsetof(evcs_event_t, source))
		return EVCS_EINVAL;
	if (b->depth >= EVCS_BUS_MAX_DEPTH) {
		b->st.refused_depth++;
		evcs_log(EVCS_LOG_ERR, "bus", ev_in->tenant_id, ev_in->pile,
			 "publish of %s from %s refused: nesting deeper than %d (subscriber loop?)",
			 evcs_event_name(ev_in->type), source ? source : "?", EVCS_BUS_MAX_DEPTH);
		return EVCS_EBUSY;
	}
	/* A local copy fills the core-owned fields without allocating; a publisher
	 * built against an older, smaller evcs_event_t is read only up to its size. */
	evcs_event_t ev;
	memset(&ev, 0, sizeof ev);
	memcpy(&ev, ev_in, ev_in->size < sizeof ev ? ev_in->size : sizeof ev);
	ev.size = sizeof ev;
	ev.source = source;
	if (ev.ts_ms == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ev.ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	b->st.published[ev.type]++;
	int vetoable = evcs_event_vetoable(ev.type);
	int result = EVCS_OK;
	struct sublist *l = &b->lists[ev.type];
	b->depth++;
	/* Subscribers added during the walk wait in b->pending, and removed ones
	 * are only flagged, so the array is stable for the whole walk. */
	for (size_t i = 0; i < l->n; i++) {
		evcs_sub_t *s = l->v[i];
		if (s->dead)
			continue;
		uint64_t t0 = mono_us();
		int r = s->cb(&ev, s->ud);
		uint64_t dt = mono_us() - t0;
		b->st.delivered++;
		if (dt > (uint64_t)b->slow_ms * 1000u)
			evcs_log(EVCS_LOG_WARNING, "bus", ev.tenant_id, ev.pile,
				 "subscriber of %s owned by %s took %llu ms", evcs_event_name(ev.type),
				 s->owner, (unsigned long long)(dt / 1000));
		if (r == EVCS_OK || r == EVCS_DEFER)
			continue;
		if (r == EVCS_VETO && vetoable) {
			b->st.vetoed++;
			evcs_log(EVCS_LOG_INFO, "bus", ev.tenant_id, ev.pile, "%s vetoed by %s",
				 evcs_event_name(ev.type), s->owner);
			result = EVCS_VETO;
			break;
		}
		b->st.subscriber_errors++;
		evcs_log(EVCS_LOG_WARNING, "bus", ev.tenant_id, ev.pile,
			 "subscriber of %s owned by %s returned %d%s; ignored",
			 evcs_event_name(ev.type), s->owner, r,
			 r == EVCS_VETO ? " (veto on a non-vetoable event)" : "");
	}
	b->depth--;
	if (b->depth == 0 && b->dirty)
		compact_all(b);
	return result;
}

const evcs_field_t *evcs_event_field(const evcs_event_t *ev, const char *name)
{
	for (size_t i = 0; ev && i < ev->nfields; i++)
		if (ev->fields[i].name && strcmp(ev->fields[i].name, name) == 0)
			return &ev->fields[i];
	return NULL;
}

const char *evcs_event_get_str(const evcs_event_t *ev, const char *name)
{
	const evcs_field_t *f = evcs_event_field(ev, name);
	return f && f->kind == EVCS_F_STR ? f->s : NULL;
}

int64_t evcs_event_get_int(const evcs_event_t *ev, const char *name, int64_t def)
{
	const evcs_field_t *f = evcs_event_field(ev, name);
	return f && (f->kind == EVCS_F_INT || f->kind == EVCS_F_BOOL) ? f->i : def;
}

/* ---- commands ---------------------------------------------------------- */

int evcs_bus_pile_claim(evcs_bus_t *b, const char *owner, int64_t tenant, const char *pile,
			evcs_cmd_handler h, void *ud)
{
	if (!owner || !pile || !*pile || !h)
		return EVCS_EINVAL;
	struct claim *c = evcs_strmap_get(b->claims, pile);
	if (c) {
		if (strcmp(c->owner, owner) != 0) {
			evcs_log(EVCS_LOG_WARNING, "bus", tenant, pile,
				 "pile moved from plugin %s to %s", c->owner, owner);
			free(c->owner);
			c->owner = strdup(owner);
		}
		c->tenant = tenant;
		c->h = h;
		c->ud = ud;
		return EVCS_OK;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return EVCS_ENOMEM;
	c->owner = strdup(owner);
	c->tenant = tenant;
	c->h = h;
	c->ud = ud;
	int err;
	evcs_strmap_put(b->claims, pile, c, &err);
	if (err) {
		free(c->owner);
		free(c);
		return EVCS_ENOMEM;
	}
	b->st.claimed_piles++;
	return EVCS_OK;
}

static void cmd_unlink(struct evcs_cmd *cmd)
{
	evcs_bus_t *b = cmd->bus;
	if (cmd->prev)
		cmd->prev->next = cmd->next;
	else if (b->cmds == cmd)
		b->cmds = cmd->next;
	if (cmd->next)
		cmd->next->prev = cmd->prev;
	cmd->next = cmd->prev = NULL;
}

static void cmd_free(struct evcs_cmd *cmd)
{
	if (cmd->timer)
		event_free(cmd->timer);
	if (cmd->defer)
		event_free(cmd->defer);
	free(cmd->pile);
	free(cmd->name);
	free(cmd->args);
	free(cmd->owner);
	free(cmd->requester);
	free(cmd);
}

static void cmd_maybe_free(struct evcs_cmd *cmd)
{
	if (cmd->finished && !cmd->owner_holds) {
		cmd_unlink(cmd);
		cmd_free(cmd);
	}
}

static void cmd_finish(struct evcs_cmd *cmd, int status, const char *json)
{
	if (cmd->finished)
		return;
	cmd->finished = 1;
	evcs_bus_t *b = cmd->bus;
	b->st.commands_pending--;
	if (status == EVCS_OK)
		b->st.commands_ok++;
	else if (status == EVCS_ETIMEDOUT)
		b->st.commands_timeout++;
	else
		b->st.commands_failed++;
	if (cmd->timer)
		event_del(cmd->timer);
	if (cmd->done)
		cmd->done(status, json, cmd->ud);
}

static void cmd_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evcs_cmd *cmd = arg;
	evcs_log(EVCS_LOG_WARNING, "bus", cmd->c.tenant_id, cmd->pile,
		 "command %s timed out waiting for %s", cmd->name, cmd->owner ? cmd->owner : "?");
	cmd_finish(cmd, EVCS_ETIMEDOUT, "{\"error\":\"timeout\",\"message\":\"the pile did not answer in time\"}");
	cmd_maybe_free(cmd);
}

static void cmd_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evcs_cmd *cmd = arg;
	const char *msg;
	switch (cmd->defer_status) {
	case EVCS_EOFFLINE:
		msg = "{\"error\":\"offline\",\"message\":\"the pile is not connected\"}";
		break;
	case EVCS_VETO:
		msg = "{\"error\":\"veto\",\"message\":\"the command was refused by policy\"}";
		break;
	case EVCS_ENOTSUP:
		msg = "{\"error\":\"not_supported\",\"message\":\"the pile's protocol does not support this command\"}";
		break;
	case EVCS_EINVAL:
		msg = "{\"error\":\"invalid\",\"message\":\"bad command arguments\"}";
		break;
	default:
		msg = "{\"error\":\"failed\",\"message\":\"the command could not be sent\"}";
	}
	cmd_finish(cmd, cmd->defer_status, msg);
	cmd_maybe_free(cmd);
}

static void cmd_fail_async(struct evcs_cmd *cmd, int status)
{
	cmd->defer_status = status;
	cmd->defer = evtimer_new(cmd->bus->base, cmd_defer_cb, cmd);
	struct timeval zero = {0, 0};
	if (cmd->defer)
		evtimer_add(cmd->defer, &zero);
	else
		cmd_defer_cb(-1, 0, cmd); /* out of memory: deliver now rather than never */
}

int evcs_bus_command_send(evcs_bus_t *b, const evcs_command_t *c, unsigned timeout_ms,
			  evcs_cmd_done done, void *ud, const char *requester)
{
	if (!c || !c->pile || !c->name || !*c->name)
		return EVCS_EINVAL;
	struct evcs_cmd *cmd = calloc(1, sizeof *cmd);
	if (!cmd)
		return EVCS_ENOMEM;
	cmd->bus = b;
	memcpy(&cmd->c, c, c->size < sizeof cmd->c ? c->size : sizeof cmd->c);
	cmd->c.size = sizeof cmd->c;
	cmd->pile = strdup(c->pile);
	cmd->name = strdup(c->name);
	cmd->args = c->args_json ? strdup(c->args_json) : NULL;
	cmd->requester = strdup(requester ? requester : "?");
	cmd->c.pile = cmd->pile;
	cmd->c.name = cmd->name;
	cmd->c.args_json = cmd->args;
	cmd->done = done;
	cmd->ud = ud;
	cmd->next = b->cmds;
	if (b->cmds)
		b->cmds->prev = cmd;
	b->cmds = cmd;
	b->st.commands_sent++;
	b->st.commands_pending++;

	evcs_field_t f[] = {EVCS_FS("command", cmd->name), EVCS_FS("args", cmd->args),
			    EVCS_FS("requester", cmd->requester)};
	evcs_event_t ev = {.size = sizeof ev, .type = EVCS_EV_COMMAND_REQUESTED,
			   .tenant_id = c->tenant_id, .pile = cmd->pile, .gun = c->gun,
			   .fields = f, .nfields = cmd->args ? 3 : 2};
	if (!cmd->args) {
		f[1] = f[2];
	}
	if (evcs_bus_publish(b, &ev, requester) == EVCS_VETO) {
		cmd_fail_async(cmd, EVCS_VETO);
		return EVCS_OK;
	}
	struct claim *cl = evcs_strmap_get(b->claims, cmd->pile);
	if (!cl || (c->tenant_id && cl->tenant && cl->tenant != c->tenant_id)) {
		/* another tenant's pile looks exactly like an offline one: no leak */
		cmd_fail_async(cmd, EVCS_EOFFLINE);
		return EVCS_OK;
	}
	cmd->owner = strdup(cl->owner);
	cmd->timer = evtimer_new(b->base, cmd_timeout_cb, cmd);
	if (cmd->timer) {
		struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
		evtimer_add(cmd->timer, &tv);
	}
	cmd->owner_holds = 1;
	int r = cl->h(cmd, &cmd->c, cl->ud);
	if (r != EVCS_OK) {
		cmd->owner_holds = 0;
		if (!cmd->finished)
			cmd_fail_async(cmd, r);
		else
			cmd_maybe_free(cmd);
	}
	return EVCS_OK;
}

void evcs_bus_command_reply(evcs_cmd_t *cmd, int status, const char *result_json)
{
	if (!cmd)
		return;
	if (!cmd->owner_holds) {
		evcs_log(EVCS_LOG_WARNING, "bus", cmd->c.tenant_id, cmd->pile,
			 "second reply to command %s ignored", cmd->name);
		return;
	}
	cmd->owner_holds = 0;
	if (cmd->finished)
		evcs_log(EVCS_LOG_INFO, "bus", cmd->c.tenant_id, cmd->pile,
			 "late answer to command %s (already timed out): %s", cmd->name,
			 result_json ? result_json : "");
	cmd_finish(cmd, status, result_json);
	cmd_maybe_free(cmd);
}

const evcs_command_t *evcs_bus_command_of(evcs_cmd_t *cmd) { return cmd ? &cmd->c : NULL; }

static void release_cmds(evcs_bus_t *b, const char *owner, const char *pile)
{
	for (struct evcs_cmd *c = b->cmds, *n; c; c = n) {
		n = c->next;
		if (c->owner_holds && c->owner && strcmp(c->owner, owner) == 0 &&
		    (!pile || strcmp(c->pile, pile) == 0)) {
			c->owner_holds = 0;
			cmd_finish(c, EVCS_EOFFLINE,
				   "{\"error\":\"offline\",\"message\":\"the pile disconnected\"}");
			cmd_maybe_free(c);
		}
	}
}

void evcs_bus_pile_release(evcs_bus_t *b, const char *owner, const char *pile)
{
	struct claim *c = evcs_strmap_get(b->claims, pile);
	if (!c || strcmp(c->owner, owner) != 0)
		return;
	evcs_strmap_del(b->claims, pile);
	free(c->owner);
	free(c);
	b->st.claimed_piles--;
	release_cmds(b, owner, pile);
}

struct rel_ctx {
	const char *owner;
	char **keys;
	size_t n, cap;
};

static void collect_owned(const char *k, void *v, void *ud)
{
	struct rel_ctx *r = ud;
	struct claim *c = v;
	if (strcmp(c->owner, r->owner) != 0)
		return;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		char **nk = realloc(r->keys, ncap * sizeof *nk);
		if (!nk)
			return;
		r->keys = nk;
		r->cap = ncap;
	}
	r->keys[r->n++] = strdup(k);
}

void evcs_bus_release_owner(evcs_bus_t *b, const char *owner)
{
	struct rel_ctx r = {owner, NULL, 0, 0};
	evcs_strmap_each(b->claims, collect_owned, &r);
	for (size_t i = 0; i < r.n; i++) {
		if (r.keys[i])
			evcs_bus_pile_release(b, owner, r.keys[i]);
		free(r.keys[i]);
	}
	free(r.keys);
	release_cmds(b, owner, NULL);
}

const char *evcs_bus_pile_owner(evcs_bus_t *b, const char *pile, int64_t *tenant)
{
	struct claim *c = evcs_strmap_get(b->claims, pile);
	if (c && tenant)
		*tenant = c->tenant;
	return c ? c->owner : NULL;
}

void evcs_bus_get_stats(evcs_bus_t *b, evcs_bus_stats_t *st) { *st = b->st; }
void evcs_bus_set_slow_threshold(evcs_bus_t *b, unsigned ms) { b->slow_ms = ms; }
