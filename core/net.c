/*
 * net.c: TCP listeners and buffered connections on behalf of plugins.
 *
 * Each accepted socket gets a bufferevent. Input stays in the bufferevent's
 * evbuffer, which the plugin reads in place (zero copy) and drains. Limits are
 * enforced here so every protocol plugin gets them for free: a per-address and a
 * total connection cap (checked before the plugin sees the socket), an idle
 * timeout (no input for idle_timeout_ms closes: this also reaps half-open
 * connections from dead mobile links), and a cap on buffered input.
 * On drain, listeners stop and each connection is closed once its pending
 * output has been written.
 */
#include "core.h"
#include "log.h"
#include "strmap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct evcs_listener {
	evcs_net_t *net;
	struct evcs_plugin *owner;
	struct evconnlistener *l;
	evcs_listen_opts_t o;
	char addr[64];
	evcs_conn_handlers_t h;
	void *ud;
	int port;
	size_t nconns;
	struct evcs_listener *next;
};

struct evcs_conn {
	evcs_net_t *net;
	struct evcs_listener *lst;
	struct bufferevent *bev;
	char peer[64];
	char addr[48];
	void *data;
	int closing;     /* close after flush */
	int in_callback; /* plugin callback running: defer free */
	int dead;        /* closed; free when the callback returns */
	char close_reason[64];
	int64_t tenant;
	char pile[24];
	struct evcs_conn *next, *prev;
};

struct evcs_net {
	evcs_core_t *core;
	struct evcs_listener *listeners;
	struct evcs_conn *conns;
	size_t nconns;
	evcs_strmap_t *per_addr;
	int draining;
	evcs_metric_t *m_accepted, *m_refused, *m_closed, *m_bytes_out;
};

static int64_t m_conns(void *ud) { return (int64_t)((evcs_net_t *)ud)->nconns; }

evcs_net_t *evcs_net_new(evcs_core_t *core)
{
	evcs_net_t *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->core = core;
	n->per_addr = evcs_strmap_new();
	if (!n->per_addr) {
		free(n);
		return NULL;
	}
	evcs_metrics_t *m = core->metrics;
	evcs_metric_fn(m, "core", "evcs_connections", "Open plugin TCP connections (chargers)",
		       EVCS_METRIC_GAUGE, m_conns, n);
	n->m_accepted = evcs_metric_new(m, "core", "evcs_connections_accepted_total",
					"TCP connections accepted", EVCS_METRIC_COUNTER);
	n->m_refused = evcs_metric_new(m, "core", "evcs_connections_refused_total",
				       "TCP connections refused by caps", EVCS_METRIC_COUNTER);
	n->m_closed = evcs_metric_new(m, "core", "evcs_connections_closed_total",
				      "TCP connections closed", EVCS_METRIC_COUNTER);
	n->m_bytes_out = evcs_metric_new(m, "core", "evcs_net_bytes_out_total",
					 "Bytes queued to connections", EVCS_METRIC_COUNTER);
	return n;
}

static void addr_count(evcs_net_t *n, const char *addr, int delta)
{
	intptr_t c = (intptr_t)evcs_strmap_get(n->per_addr, addr) + delta;
	if (c <= 0)
		evcs_strmap_del(n->per_addr, addr);
	else
		evcs_strmap_put(n->per_addr, addr, (void *)c, NULL);
}

static void conn_free(struct evcs_conn *c)
{
	evcs_net_t *n = c->net;
	if (c->prev)
		c->prev->next = c->next;
	else if (n->conns == c)
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n->nconns--;
	c->lst->nconns--;
	addr_count(n, c->addr, -1);
	if (c->bev)
		bufferevent_free(c->bev);
	free(c);
}

/* Tell the plugin (once) and release the connection. */
static void conn_finish(struct evcs_conn *c, const char *reason)
{
	if (c->dead)
		return;
	c->dead = 1;
	evcs_metric_add(c->net->m_closed, 1);
	if (c->bev) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	evcs_log(EVCS_LOG_DEBUG, c->lst->owner ? c->lst->owner->name : "net", c->tenant,
		 c->pile[0] ? c->pile : NULL, "connection %s closed: %s", c->peer, reason);
	if (c->lst->h.on_close) {
		c->in_callback++;
		c->lst->h.on_close(c, reason, c->lst->ud);
		c->in_callback--;
	}
	if (!c->in_callback)
		conn_free(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct evcs_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	size_t cap = c->lst->o.max_input ? c->lst->o.max_input : 65536;
	if (len > cap) {
		evcs_log(EVCS_LOG_WARNING, c->lst->owner->name, c->tenant, c->pile[0] ? c->pile : NULL,
			 "%s sent %zu unconsumed bytes (cap %zu); closing", c->peer, len, cap);
		conn_finish(c, "input limit exceeded");
		return;
	}
	if (c->closing) { /* ignore input while we flush our goodbye */
		evbuffer_drain(in, len);
		return;
	}
	c->in_callback++;
	if (c->lst->h.on_read)
		c->lst->h.on_read(c, c->lst->ud);
	c->in_callback--;
	if (c->dead && !c->in_callback)
		conn_free(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct evcs_conn *c = arg;
	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_finish(c, c->close_reason[0] ? c->close_reason : "closed by server");
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct evcs_conn *c = arg;
	const char *reason = "error";
	char buf[96];
	if (what & BEV_EVENT_EOF)
		reason = "peer closed";
	else if (what & BEV_EVENT_TIMEOUT)
		reason = (what & BEV_EVENT_READING) ? "idle timeout" : "write timeout";
	else if (what & BEV_EVENT_ERROR) {
		snprintf(buf, sizeof buf, "socket error: %s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		reason = buf;
	}
	conn_finish(c, reason);
}

static void accept_cb(struct evconnlistener *el, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct evcs_listener *l = arg;
	evcs_net_t *n = l->net;
	char addr[48] = "?", peer[64];
	int port = 0;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
		port = ntohs(s4->sin_port);
		snprintf(peer, sizeof peer, "%s:%d", addr, port);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
		port = ntohs(s6->sin6_port);
		snprintf(peer, sizeof peer, "[%s]:%d", addr, port);
	} else {
		snprintf(peer, sizeof peer, "?");
	}
	const char *who = l->owner ? l->owner->name : "net";
	if (n->draining) {
		evutil_closesocket(fd);
		return;
	}
	intptr_t from_addr = (intptr_t)evcs_strmap_get(n->per_addr, addr);
	if ((l->o.max_per_addr && (size_t)from_addr >= l->o.max_per_addr) ||
	    (l->o.max_conns && l->nconns >= l->o.max_conns)) {
		evcs_metric_add(n->m_refused, 1);
		/* rate-limit this line: a flood would otherwise flood the log too */
		if ((n->m_refused ? evcs_metric_value(n->m_refused) : 0) % 100 == 1)
			evcs_log(EVCS_LOG_WARNING, who, 0, NULL,
				 "refused connection from %s: %s cap reached (%ld from this address, %zu total)",
				 peer, (l->o.max_per_addr && (size_t)from_addr >= l->o.max_per_addr)
					   ? "per-address" : "total",
				 (long)from_addr, l->nconns);
		evutil_closesocket(fd);
		return;
	}
	struct evcs_conn *c = calloc(1, sizeof *c);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->net = n;
	c->lst = l;
	snprintf(c->peer, sizeof c->peer, "%s", peer);
	snprintf(c->addr, sizeof c->addr, "%s", addr);
	c->bev = bufferevent_socket_new(n->core->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->nconns++;
	l->nconns++;
	addr_count(n, addr, +1);
	evcs_metric_add(n->m_accepted, 1);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	if (l->o.idle_timeout_ms)
		evcs_net_conn_set_idle(c, l->o.idle_timeout_ms);
	if (l->h.on_accept) {
		c->in_callback++;
		int r = l->h.on_accept(c, l->ud);
		c->in_callback--;
		if (r < 0 && !c->dead) {
			/* refused by the plugin: it already knows, so no on_close */
			c->dead = 1;
			conn_free(c);
			return;
		}
		if (c->dead) {
			conn_free(c);
			return;
		}
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void listener_error_cb(struct evconnlistener *el, void *arg)
{
	struct evcs_listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	/* EMFILE/ENFILE: out of descriptors. Log and keep the listener; libevent
	 * retries on the next readiness, and existing chargers stay connected. */
	evcs_log(EVCS_LOG_ERR, l->owner ? l->owner->name : "net", 0, NULL,
		 "accept on %s:%d failed: %s", l->addr, l->port, evutil_socket_error_to_string(e));
}

evcs_listener_t *evcs_net_listen(evcs_net_t *n, struct evcs_plugin *owner,
				 const evcs_listen_opts_t *o, const evcs_conn_handlers_t *h, void *ud)
{
	const char *who = owner ? owner->name : "net";
	if (!o || !h || o->port < 0 || o->port > 65535) {
		evcs_err(who, "listen: bad options");
		return NULL;
	}
	struct evcs_listener *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	memcpy(&l->o, o, o->size < sizeof l->o ? o->size : sizeof l->o);
	memcpy(&l->h, h, h->size < sizeof l->h ? h->size : sizeof l->h);
	snprintf(l->addr, sizeof l->addr, "%s", o->addr ? o->addr : "0.0.0.0");
	l->o.addr = l->addr;
	l->net = n;
	l->owner = owner;
	l->ud = ud;
	struct sockaddr_storage ss;
	int sslen;
	char spec[96];
	snprintf(spec, sizeof spec, strchr(l->addr, ':') ? "[%s]:%d" : "%s:%d", l->addr, o->port);
	memset(&ss, 0, sizeof ss);
	/* built by hand: evutil_parse_sockaddr_port refuses port 0 (ephemeral) */
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (evutil_inet_pton(AF_INET, l->addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)o->port);
		sslen = sizeof *s4;
	} else if (evutil_inet_pton(AF_INET6, l->addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)o->port);
		sslen = sizeof *s6;
	} else {
		evcs_err(who, "listen: '%s' is not an IPv4 or IPv6 address", l->addr);
		free(l);
		return NULL;
	}
	l->l = evconnlistener_new_bind(n->core->base, accept_cb, l,
				       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
					   LEV_OPT_CLOSE_ON_EXEC,
				       1024, (struct sockaddr *)&ss, sslen);
	if (!l->l) {
		evcs_err(who, "cannot listen on %s: %s", spec, strerror(errno));
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->l, listener_error_cb);
	struct sockaddr_storage bound;
	socklen_t bl = sizeof bound;
	getsockname(evconnlistener_get_fd(l->l), (struct sockaddr *)&bound, &bl);
	l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
						     : ((struct sockaddr_in *)&bound)->sin_port);
	l->next = n->listeners;
	n->listeners = l;
	evcs_log(EVCS_LOG_NOTICE, who, 0, NULL, "listening on %s:%d", l->addr, l->port);
	return l;
}

int evcs_net_listener_port(evcs_listener_t *l) { return l ? l->port : -1; }

void evcs_net_drain(evcs_net_t *n)
{
	n->draining = 1;
	for (struct evcs_listener *l = n->listeners; l; l = l->next)
		if (l->l) {
			evconnlistener_free(l->l);
			l->l = NULL;
		}
	for (struct evcs_conn *c = n->conns, *nx; c; c = nx) {
		nx = c->next;
		evcs_net_conn_close(c, 1, "server shutting down");
	}
}

void evcs_net_drop_owner(evcs_net_t *n, struct evcs_plugin *owner)
{
	for (struct evcs_conn *c = n->conns, *nx; c; c = nx) {
		nx = c->next;
		if (c->lst->owner == owner)
			conn_finish(c, "plugin unloaded");
	}
	struct evcs_listener **pp = &n->listeners;
	while (*pp) {
		struct evcs_listener *l = *pp;
		if (l->owner == owner) {
			*pp = l->next;
			if (l->l)
				evconnlistener_free(l->l);
			free(l);
		} else {
			pp = &l->next;
		}
	}
}

void evcs_net_free(evcs_net_t *n)
{
	if (!n)
		return;
	while (n->conns)
		conn_finish(n->conns, "server stopped");
	while (n->listeners) {
		struct evcs_listener *l = n->listeners;
		n->listeners = l->next;
		if (l->l)
			evconnlistener_free(l->l);
		free(l);
	}
	evcs_strmap_free(n->per_addr);
	free(n);
}

size_t evcs_net_conn_count(evcs_net_t *n) { return n ? n->nconns : 0; }

size_t evcs_net_pending_output(evcs_net_t *n)
{
	size_t t = 0;
	for (struct evcs_conn *c = n ? n->conns : NULL; c; c = c->next)
		if (c->bev && !c->dead)
			t += evbuffer_get_length(bufferevent_get_output(c->bev));
	return t;
}

struct evbuffer *evcs_net_conn_input(evcs_conn_t *c)
{
	return c && c->bev ? bufferevent_get_input(c->bev) : NULL;
}

int evcs_net_conn_write(evcs_conn_t *c, const void *d, size_t len)
{
	if (!c || c->dead || c->closing || !c->bev)
		return EVCS_EOFFLINE;
	if (bufferevent_write(c->bev, d, len) < 0)
		return EVCS_ENOMEM;
	evcs_metric_add(c->net->m_bytes_out, (int64_t)len);
	return EVCS_OK;
}

void evcs_net_conn_close(evcs_conn_t *c, int flush, const char *reason)
{
	if (!c || c->dead)
		return;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "closed by server");
	if (flush && c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		c->closing = 1;
		/* bound the wait: a peer that never reads must not hold shutdown */
		struct timeval wt = {5, 0};
		bufferevent_set_timeouts(c->bev, NULL, &wt);
		return;
	}
	conn_finish(c, c->close_reason);
}

const char *evcs_net_conn_peer(evcs_conn_t *c) { return c ? c->peer : ""; }
const char *evcs_net_conn_peer_addr(evcs_conn_t *c) { return c ? c->addr : ""; }
void evcs_net_conn_set_data(evcs_conn_t *c, void *d)
{
	if (c)
		c->data = d;
}
void *evcs_net_conn_get_data(evcs_conn_t *c) { return c ? c->data : NULL; }

void evcs_net_conn_set_idle(evcs_conn_t *c, unsigned ms)
{
	if (!c || !c->bev)
		return;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	bufferevent_set_timeouts(c->bev, ms ? &tv : NULL, NULL);
}

void evcs_net_conn_set_identity(evcs_conn_t *c, int64_t tenant, const char *pile)
{
	if (!c)
		return;
	c->tenant = tenant;
	snprintf(c->pile, sizeof c->pile, "%s", pile ? pile : "");
}
