/*
 * http.c: the core's HTTP server (libevent evhttp, optional TLS through
 * libevent_openssl). Serves /healthz and /metrics itself and dispatches every
 * other path to the route whose prefix matches the most path segments
 * (routes from the operator API and from plugins). A handler may answer later;
 * the request wrapper lives until it is answered (evhttp keeps an unanswered
 * request alive even when the client goes away, and frees it on the reply).
 * Bodies above [http] max_body get 413 from evhttp itself.
 */
#include "core.h"
#include "log.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct route {
	char *owner, *method, *prefix;
	size_t plen;
	evcs_http_handler fn;
	void *ud;
};

struct evcs_http_req {
	evcs_http_t *http;
	struct evhttp_request *req;
	char *path;
	char *body;
	size_t bodylen;
	int have_query;
	struct evkeyvalq query;
	char peer[64];
	struct evcs_http_req *next, *prev;
};

struct evcs_http {
	evcs_core_t *core;
	struct evhttp *h;
	struct evhttp_bound_socket *sock;
	SSL_CTX *ssl;
	int port;
	struct route *routes;
	size_t nroutes;
	struct evcs_http_req *pending;
	evcs_metric_t *m_requests, *m_errors;
};

static void req_free(struct evcs_http_req *r)
{
	evcs_http_t *h = r->http;
	if (r->prev)
		r->prev->next = r->next;
	else if (h->pending == r)
		h->pending = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->have_query)
		evhttp_clear_headers(&r->query);
	free(r->path);
	free(r->body);
	free(r);
}

void evcs_http_req_reply(evcs_http_req_t *r, int status, const char *ctype, const void *body,
			 size_t len)
{
	if (!r)
		return;
	struct evbuffer *b = evbuffer_new();
	if (b && body && len)
		evbuffer_add(b, body, len);
	struct evkeyvalq *oh = evhttp_request_get_output_headers(r->req);
	if (ctype)
		evhttp_add_header(oh, "Content-Type", ctype);
	evhttp_add_header(oh, "Cache-Control", "no-store");
	if (status >= 400)
		evcs_metric_add(r->http->m_errors, 1);
	evhttp_send_reply(r->req, status, NULL, b);
	if (b)
		evbuffer_free(b);
	req_free(r);
}

void evcs_http_reply_error(evcs_http_req_t *r, int status, const char *code, const char *field,
			   const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *e = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (field)
		json_object_set_new(e, "field", json_string(field));
	json_t *o = json_pack("{s:o}", "error", e);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	evcs_http_req_reply(r, status, "application/json", s, s ? strlen(s) : 0);
	free(s);
}

const char *evcs_http_req_method(evcs_http_req_t *r)
{
	switch (evhttp_request_get_command(r->req)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	default: return "OTHER";
	}
}

const char *evcs_http_req_path(evcs_http_req_t *r) { return r->path; }

const char *evcs_http_req_query(evcs_http_req_t *r, const char *key)
{
	if (!r->have_query) {
		const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->req));
		TAILQ_INIT(&r->query);
		r->have_query = 1;
		if (q && evhttp_parse_query_str(q, &r->query) < 0)
			evhttp_clear_headers(&r->query);
	}
	return evhttp_find_header(&r->query, key);
}

const char *evcs_http_req_header(evcs_http_req_t *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *evcs_http_req_body(evcs_http_req_t *r, size_t *len)
{
	if (len)
		*len = r->bodylen;
	return r->body;
}

const char *evcs_http_req_peer(evcs_http_req_t *r) { return r->peer; }

/* Does `prefix` match `path` on whole segments? "/api/v1/" matches "/api/v1/x";
 * "/healthz" matches "/healthz" but not "/healthzz". */
static int prefix_match(const char *prefix, size_t plen, const char *path)
{
	if (strncmp(path, prefix, plen) != 0)
		return 0;
	if (plen && prefix[plen - 1] == '/')
		return 1;
	return path[plen] == 0 || path[plen] == '/';
}

static void health(evcs_http_t *h, evcs_http_req_t *r)
{
	evcs_core_t *c = h->core;
	int ok = c->ready && !c->draining;
	json_t *o = json_pack("{s:s}", "status", ok ? "ready" : "not_ready");
	if (!ok)
		json_object_set_new(o, "reason",
				    json_string(c->draining ? "shutting down" : c->not_ready));
	json_t *pl = json_array();
	for (size_t i = 0; i < c->nplugins; i++)
		json_array_append_new(pl, json_pack("{s:s, s:s, s:b}", "name", c->plugins[i]->name,
						    "version", c->plugins[i]->info->version,
						    "up", c->plugins[i]->initialised));
	json_object_set_new(o, "plugins", pl);
	json_object_set_new(o, "connections", json_integer((json_int_t)evcs_net_conn_count(c->net)));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	evcs_http_req_reply(r, ok ? 200 : 503, "application/json", s, strlen(s));
	free(s);
}

static void metrics(evcs_http_t *h, evcs_http_req_t *r)
{
	struct evbuffer *b = evbuffer_new();
	evcs_bus_stats_t st;
	evcs_bus_get_stats(h->core->bus, &st);
	evbuffer_add_printf(b, "# HELP evcs_bus_events_total Events published on the hook bus\n"
			       "# TYPE evcs_bus_events_total counter\n");
	for (uint32_t t = 1; t < EVCS_EV__COUNT; t++)
		evbuffer_add_printf(b, "evcs_bus_events_total{event=\"%s\"} %llu\n",
				    evcs_event_name(t), (unsigned long long)st.published[t]);
	evbuffer_add_printf(
	    b,
	    "# HELP evcs_bus_deliveries_total Subscriber calls\n# TYPE evcs_bus_deliveries_total counter\n"
	    "evcs_bus_deliveries_total %llu\n"
	    "# HELP evcs_bus_vetoes_total Vetoed events\n# TYPE evcs_bus_vetoes_total counter\n"
	    "evcs_bus_vetoes_total %llu\n"
	    "# HELP evcs_bus_subscriber_errors_total Subscriber calls that returned an error\n"
	    "# TYPE evcs_bus_subscriber_errors_total counter\nevcs_bus_subscriber_errors_total %llu\n"
	    "# HELP evcs_commands_total Commands to piles by outcome\n# TYPE evcs_commands_total counter\n"
	    "evcs_commands_total{outcome=\"ok\"} %llu\nevcs_commands_total{outcome=\"failed\"} %llu\n"
	    "evcs_commands_total{outcome=\"timeout\"} %llu\n"
	    "# HELP evcs_commands_pending Commands waiting for a pile's answer\n"
	    "# TYPE evcs_commands_pending gauge\nevcs_commands_pending %llu\n"
	    "# HELP evcs_piles_claimed Piles connected and owned by a protocol plugin\n"
	    "# TYPE evcs_piles_claimed gauge\nevcs_piles_claimed %zu\n",
	    (unsigned long long)st.delivered, (unsigned long long)st.vetoed,
	    (unsigned long long)st.subscriber_errors, (unsigned long long)st.commands_ok,
	    (unsigned long long)st.commands_failed, (unsigned long long)st.commands_timeout,
	    (unsigned long long)st.commands_pending, st.claimed_piles);
	evbuffer_add_printf(b, "# HELP evcs_plugin_up Plugin loaded and initialised (1) or not (0)\n"
			       "# TYPE evcs_plugin_up gauge\n");
	for (size_t i = 0; i < h->core->nplugins; i++)
		evbuffer_add_printf(b, "evcs_plugin_up{plugin=\"%s\",version=\"%s\"} %d\n",
				    h->core->plugins[i]->name, h->core->plugins[i]->info->version,
				    h->core->plugins[i]->initialised);
	evcs_metrics_render(h->core->metrics, b);
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len + 1);
	if (s)
		evbuffer_remove(b, s, len);
	evbuffer_free(b);
	evcs_http_req_reply(r, 200, "text/plain; version=0.0.4", s, s ? len : 0);
	free(s);
}

static void gen_cb(struct evhttp_request *req, void *arg)
{
	evcs_http_t *h = arg;
	evcs_metric_add(h->m_requests, 1);
	struct evcs_http_req *r = calloc(1, sizeof *r);
	if (!r) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	r->http = h;
	r->req = req;
	r->next = h->pending;
	if (h->pending)
		h->pending->prev = r;
	h->pending = r;
	struct evhttp_connection *con = evhttp_request_get_connection(req);
	if (con) {
		char *addr = NULL;
		ev_uint16_t port = 0;
		evhttp_connection_get_peer(con, &addr, &port);
		snprintf(r->peer, sizeof r->peer, "%s:%u", addr ? addr : "?", port);
	}
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *raw = u ? evhttp_uri_get_path(u) : NULL;
	size_t plen = 0;
	r->path = evhttp_uridecode(raw && *raw ? raw : "/", 0, &plen);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	r->bodylen = evbuffer_get_length(in);
	r->body = malloc(r->bodylen + 1);
	if (!r->path || !r->body) {
		evcs_http_reply_error(r, 503, "unavailable", NULL, "out of memory");
		return;
	}
	evbuffer_copyout(in, r->body, r->bodylen);
	r->body[r->bodylen] = 0;
	if (strlen(r->path) != plen) { /* an encoded NUL would cut the path short */
		evcs_http_reply_error(r, 400, "bad_request", NULL, "bad path");
		return;
	}
	if (strcmp(r->path, "/healthz") == 0) {
		health(h, r);
		return;
	}
	if (strcmp(r->path, "/metrics") == 0) {
		metrics(h, r);
		return;
	}
	const char *method = evcs_http_req_method(r);
	struct route *best = NULL;
	int method_mismatch = 0;
	for (size_t i = 0; i < h->nroutes; i++) {
		struct route *rt = &h->routes[i];
		if (!prefix_match(rt->prefix, rt->plen, r->path))
			continue;
		if (rt->method && strcmp(rt->method, method) != 0) {
			method_mismatch = 1;
			continue;
		}
		if (!best || rt->plen > best->plen)
			best = rt;
	}
	if (!best) {
		if (method_mismatch)
			evcs_http_reply_error(r, 405, "method_not_allowed", NULL,
					      "%s is not allowed on %s", method, r->path);
		else
			evcs_http_reply_error(r, 404, "not_found", NULL, "no such resource: %s",
					      r->path);
		return;
	}
	best->fn(r, best->ud);
}

static struct bufferevent *ssl_bevcb(struct event_base *base, void *arg)
{
	evcs_http_t *h = arg;
	SSL *ssl = SSL_new(h->ssl);
	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

evcs_http_t *evcs_http_new(evcs_core_t *core, char *err, size_t errlen)
{
	evcs_http_t *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->core = core;
	const char *listen = evcs_conf_get(core->conf, "http", "listen", "127.0.0.1:8080");
	char host[128];
	int port;
	if (evcs_conf_hostport(listen, host, sizeof host, &port) < 0) {
		snprintf(err, errlen, "[http] listen: expected HOST:PORT, got '%s'", listen);
		goto fail;
	}
	long long max_body, timeout;
	if (evcs_conf_int(core->conf, "http", "max_body", 1048576, 1024, 1LL << 30, &max_body, err,
			  errlen) < 0 ||
	    evcs_conf_int(core->conf, "http", "timeout", 60, 1, 3600, &timeout, err, errlen) < 0)
		goto fail;
	h->h = evhttp_new(core->base);
	if (!h->h) {
		snprintf(err, errlen, "cannot create the HTTP server");
		goto fail;
	}
	evhttp_set_max_body_size(h->h, (ev_ssize_t)max_body);
	evhttp_set_max_headers_size(h->h, 65536);
	evhttp_set_timeout(h->h, (int)timeout);
	evhttp_set_allowed_methods(h->h, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
					     EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
					     EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(h->h, gen_cb, h);
	const char *cert = evcs_conf_get(core->conf, "http", "tls_cert", NULL);
	const char *key = evcs_conf_get(core->conf, "http", "tls_key", NULL);
	if ((cert && *cert) != (key && *key)) {
		snprintf(err, errlen, "[http] tls_cert and tls_key must be set together");
		goto fail;
	}
	if (cert && *cert) {
		h->ssl = SSL_CTX_new(TLS_server_method());
		if (!h->ssl || SSL_CTX_use_certificate_chain_file(h->ssl, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(h->ssl, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(h->ssl) != 1) {
			char e[256];
			ERR_error_string_n(ERR_get_error(), e, sizeof e);
			snprintf(err, errlen, "[http] TLS certificate/key %s / %s: %s", cert, key, e);
			goto fail;
		}
		SSL_CTX_set_min_proto_version(h->ssl, TLS1_2_VERSION);
		evhttp_set_bevcb(h->h, ssl_bevcb, h);
	}
	h->sock = evhttp_bind_socket_with_handle(h->h, host, (ev_uint16_t)port);
	if (!h->sock) {
		snprintf(err, errlen, "cannot listen for HTTP on %s (in use, or bad address?)", listen);
		goto fail;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(evhttp_bound_socket_get_fd(h->sock), (struct sockaddr *)&ss, &sl);
	h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	h->m_requests = evcs_metric_new(core->metrics, "core", "evcs_http_requests_total",
					"HTTP requests received", EVCS_METRIC_COUNTER);
	h->m_errors = evcs_metric_new(core->metrics, "core", "evcs_http_errors_total",
				      "HTTP answers with status >= 400", EVCS_METRIC_COUNTER);
	evcs_notice("http", "listening on %s:%d%s", host, h->port, h->ssl ? " (TLS)" : "");
	return h;
fail:
	evcs_http_free(h);
	return NULL;
}

int evcs_http_port(evcs_http_t *h) { return h ? h->port : -1; }

void evcs_http_stop_accepting(evcs_http_t *h)
{
	if (h && h->sock) {
		evhttp_del_accept_socket(h->h, h->sock);
		h->sock = NULL;
	}
}

void evcs_http_free(evcs_http_t *h)
{
	if (!h)
		return;
	/* answer what handlers left pending, so no client hangs and nothing leaks */
	while (h->pending)
		evcs_http_reply_error(h->pending, 503, "unavailable", NULL, "server shutting down");
	if (h->h)
		evhttp_free(h->h);
	for (size_t i = 0; i < h->nroutes; i++) {
		free(h->routes[i].owner);
		free(h->routes[i].method);
		free(h->routes[i].prefix);
	}
	free(h->routes);
	if (h->ssl)
		SSL_CTX_free(h->ssl);
	free(h);
}

int evcs_http_route(evcs_http_t *h, const char *owner, const char *method, const char *prefix,
		    evcs_http_handler fn, void *ud)
{
	if (!h || !prefix || prefix[0] != '/' || !fn)
		return EVCS_EINVAL;
	if (!strcmp(prefix, "/healthz") || !strcmp(prefix, "/metrics"))
		return EVCS_EEXIST;
	for (size_t i = 0; i < h->nroutes; i++)
		if (strcmp(h->routes[i].prefix, prefix) == 0 &&
		    ((!method && !h->routes[i].method) ||
		     (method && h->routes[i].method && !strcmp(method, h->routes[i].method))))
			return EVCS_EEXIST;
	struct route *nr = realloc(h->routes, (h->nroutes + 1) * sizeof *nr);
	if (!nr)
		return EVCS_ENOMEM;
	h->routes = nr;
	struct route *rt = &h->routes[h->nroutes++];
	rt->owner = strdup(owner ? owner : "core");
	rt->method = method ? strdup(method) : NULL;
	rt->prefix = strdup(prefix);
	rt->plen = strlen(prefix);
	rt->fn = fn;
	rt->ud = ud;
	return EVCS_OK;
}

void evcs_http_drop_owner(evcs_http_t *h, const char *owner)
{
	size_t w = 0;
	for (size_t i = 0; i < h->nroutes; i++) {
		if (strcmp(h->routes[i].owner, owner) == 0) {
			free(h->routes[i].owner);
			free(h->routes[i].method);
			free(h->routes[i].prefix);
		} else {
			h->routes[w++] = h->routes[i];
		}
	}
	h->nroutes = w;
}
