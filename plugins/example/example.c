/*
 * example.c: the "echo-status" example plugin for evcsd, built out of tree
 * against the installed SDK only (evcs/plugin.h + `pkg-config evcs-plugin`).
 *
 * Protocol: one command per line (LF or CRLF), one reply line per command.
 *   PING    -> PONG
 *   STATUS  -> STATUS connections=N pings=N reloads=N
 *   QUIT    -> BYE, then the connection is closed
 *   other   -> ERR unknown command
 * A line longer than EXAMPLE_MAX_LINE closes the connection (a peer that never
 * sends a newline must not grow the input buffer without bound).
 *
 * Configuration ([plugin example] section of evcsd.conf):
 *   listen = HOST:PORT   address to accept on (required; PORT 0 = ephemeral,
 *                        the chosen port is logged)
 *   idle_timeout = SECS  close idle connections (default 300, 0 = never)
 *
 * It also shows the other registration kinds a plugin uses: an HTTP route on
 * the core's server (GET /example/status), two Prometheus metrics and a hook
 * bus subscription (EVCS_EV_CONFIG_RELOADED, counted in "reloads"). The ABI 2
 * part is in notes.c: its own table (schema/001_notes.sql, compiled into the
 * descriptor's `migrations`), an authenticated operator-API route per tenant
 * (/api/v1/example/notes), a service it offers (example_service.h) and one it
 * looks up ("messaging").
 *
 * Threading and ownership: everything runs on the core's loop thread, so the
 * state needs no locks. The core owns the listener, the connections, the route,
 * the metrics and the subscription, and tears them down when the plugin is
 * unloaded; cleanup() frees only the plugin's own state struct. Reading input
 * uses libevent's evbuffer API on the buffer the core lends (api->conn_input);
 * those symbols resolve against the libevent the daemon already has loaded.
 */
#include "example.h"

#include <event2/buffer.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_MAX_LINE 512

struct example {
	const evcs_api_t *api;
	evcs_plugin_t *self;
	evcs_listener_t *listener;
	evcs_metric_t *m_pings;       /* counter */
	evcs_metric_t *m_connections; /* gauge */
	unsigned connections;
	unsigned long long pings;
	unsigned long long reloads;
	char listen_spec[96]; /* as configured at init, to spot a change on reload */
	struct example_notes *notes; /* notes.c */
};

/* Split "HOST:PORT" (IPv6 as "[::1]:PORT") into host and port; 0 on success. */
static int parse_listen(const char *spec, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec || colon[1] == '\0')
		return -1;
	const char *h = spec;
	size_t hl = (size_t)(colon - spec);
	if (h[0] == '[') {
		if (hl < 3 || h[hl - 1] != ']')
			return -1;
		h++;
		hl -= 2;
	}
	if (hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';

	char *end;
	errno = 0;
	long v = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/* 0, or -1 when the write failed and the connection was closed (the handle
 * must not be used after that). */
static int reply(struct example *ex, evcs_conn_t *c, const char *line)
{
	if (ex->api->conn_write(c, line, strlen(line)) == EVCS_OK)
		return 0;
	ex->api->conn_close(c, 0, "write failed");
	return -1;
}

/* Handle one complete command line; returns 0 to keep reading, -1 when the
 * connection is closed or closing. */
static int handle_line(struct example *ex, evcs_conn_t *c, const char *line)
{
	char buf[128];

	if (strcmp(line, "PING") == 0) {
		ex->pings++;
		ex->api->metric_add(ex->m_pings, 1);
		return reply(ex, c, "PONG\r\n");
	} else if (strcmp(line, "STATUS") == 0) {
		snprintf(buf, sizeof buf, "STATUS connections=%u pings=%llu reloads=%llu\r\n",
			 ex->connections, ex->pings, ex->reloads);
		return reply(ex, c, buf);
	} else if (strcmp(line, "QUIT") == 0) {
		if (reply(ex, c, "BYE\r\n") == 0)
			ex->api->conn_close(c, 1, "quit");
		return -1;
	}
	return reply(ex, c, "ERR unknown command\r\n");
}

static int on_accept(evcs_conn_t *c, void *ud)
{
	struct example *ex = ud;
	ex->connections++;
	ex->api->metric_set(ex->m_connections, ex->connections);
	ex->api->log(ex->self, EVCS_LOG_DEBUG, 0, NULL, "connection from %s",
		     ex->api->conn_peer(c));
	return 0;
}

static void on_read(evcs_conn_t *c, void *ud)
{
	struct example *ex = ud;
	struct evbuffer *in = ex->api->conn_input(c);

	for (;;) {
		size_t n = 0;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		if (line == NULL)
			break;
		int rc = n > EXAMPLE_MAX_LINE ? -2 : handle_line(ex, c, line);
		free(line);
		if (rc == -2) {
			ex->api->conn_close(c, 0, "line too long");
			return;
		}
		if (rc < 0)
			return;
	}
	if (evbuffer_get_length(in) > EXAMPLE_MAX_LINE)
		ex->api->conn_close(c, 0, "line too long");
}

static void on_close(evcs_conn_t *c, const char *reason, void *ud)
{
	struct example *ex = ud;
	if (ex->connections > 0)
		ex->connections--;
	ex->api->metric_set(ex->m_connections, ex->connections);
	(void)c; /* the core already logs the close and its reason */
	(void)reason;
}

/* GET /example/status: the same counters as the STATUS command, as text. */
static void http_status(evcs_http_req_t *req, void *ud)
{
	struct example *ex = ud;
	char body[160];
	int n = snprintf(body, sizeof body, "connections %u\npings %llu\nreloads %llu\n",
			 ex->connections, ex->pings, ex->reloads);
	ex->api->http_reply(req, 200, "text/plain; charset=utf-8", body, (size_t)n);
}

static int on_reloaded(const evcs_event_t *ev, void *ud)
{
	struct example *ex = ud;
	(void)ev; /* CONFIG_RELOADED carries no fields */
	ex->reloads++;
	return EVCS_OK;
}

/* The table is handed to init() only, but cleanup() needs it to find its
 * state; it is the core's and constant for the life of the plugin. */
static const evcs_api_t *example_api;

/* Registers everything; on failure the caller frees `ex`. The core drops a
 * failed plugin's registrations when it unloads it. */
static int example_setup(struct example *ex)
{
	const evcs_api_t *api = ex->api;
	evcs_plugin_t *p = ex->self;

	const char *spec = api->config_get(p, "listen");
	char host[64];
	int port;
	if (spec == NULL || parse_listen(spec, host, sizeof host, &port) != 0) {
		api->log(p, EVCS_LOG_ERR, 0, NULL, "listen: expected HOST:PORT, got '%s'",
			 spec != NULL ? spec : "(unset)");
		return EVCS_EINVAL;
	}
	snprintf(ex->listen_spec, sizeof ex->listen_spec, "%s", spec);
	long long idle;
	if (api->config_int(p, "idle_timeout", 300, 0, 86400, &idle) != EVCS_OK)
		return EVCS_EINVAL; /* the core logged the bad value */

	ex->m_pings = api->metric_new(p, "evcs_example_pings_total",
				      "PING commands answered by the example plugin",
				      EVCS_METRIC_COUNTER);
	ex->m_connections = api->metric_new(p, "evcs_example_connections",
					    "Open connections to the example plugin",
					    EVCS_METRIC_GAUGE);
	if (ex->m_pings == NULL || ex->m_connections == NULL)
		return EVCS_ERR;

	if (api->http_route(p, "GET", "/example/status", http_status, ex) != EVCS_OK)
		return EVCS_ERR;
	if (api->bus_subscribe(p, EVCS_EV_CONFIG_RELOADED, EVCS_PRIO_NORMAL, on_reloaded, ex,
			       NULL) != EVCS_OK)
		return EVCS_ERR;

	evcs_listen_opts_t o = {
	    .size = sizeof o,
	    .addr = host,
	    .port = port,
	    .idle_timeout_ms = (unsigned)idle * 1000u,
	    .max_input = 4 * EXAMPLE_MAX_LINE,
	};
	static const evcs_conn_handlers_t handlers = {
	    .size = sizeof handlers,
	    .on_accept = on_accept,
	    .on_read = on_read,
	    .on_close = on_close,
	};
	ex->listener = api->listen(p, &o, &handlers, ex);
	if (ex->listener == NULL)
		return EVCS_ERR; /* the core logged why (address in use, ...) */
	int rc = example_notes_setup(api, p, &ex->notes);
	if (rc != EVCS_OK)
		return rc;
	/* With port 0 this line is the only place the chosen port shows up. */
	api->log(p, EVCS_LOG_NOTICE, 0, NULL, "echo-status listening on %s:%d", host,
		 api->listener_port(ex->listener));
	return EVCS_OK;
}

static int example_init(evcs_plugin_t *p, const evcs_api_t *api)
{
	/* example.c uses only ABI 1.0 functions; notes.c checks the ABI 2 ones. */
	example_api = api;
	struct example *ex = calloc(1, sizeof *ex);
	if (ex == NULL)
		return EVCS_ENOMEM;
	ex->api = api;
	ex->self = p;
	int rc = example_setup(ex);
	if (rc != EVCS_OK) {
		free(ex);
		return rc;
	}
	api->set_userdata(p, ex);
	return EVCS_OK;
}

static void example_cleanup(evcs_plugin_t *p)
{
	if (example_api == NULL)
		return;
	struct example *ex = example_api->get_userdata(p);
	if (ex != NULL)
		example_notes_free(ex->notes);
	free(ex);
}

static void example_reload(evcs_plugin_t *p)
{
	/* Moving the listener would drop its connections, so a changed address
	 * waits for a restart; say so rather than silently keep the old one. */
	const struct example *ex = example_api->get_userdata(p);
	const char *spec = example_api->config_get(p, "listen");
	if (spec == NULL || strcmp(spec, ex->listen_spec) != 0)
		example_api->log(p, EVCS_LOG_WARNING, 0, NULL,
				 "listen changed to '%s': restart evcsd to apply it",
				 spec != NULL ? spec : "(unset)");
}

static const evcs_plugin_info_t example_info = {
    .size = sizeof(evcs_plugin_info_t),
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "example",
    .version = "2.0.0",
    .description = "echo-status: line protocol example (PING, STATUS), notes per tenant",
    .init = example_init,
    .cleanup = example_cleanup,
    .reload = example_reload,
    .migrations = example_migrations, /* schema/NNN_name.sql, via evcs-embed-sql */
};

EVCS_PLUGIN_DECLARE(example_info)
