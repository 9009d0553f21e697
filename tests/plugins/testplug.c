/*
 * testplug.c: a plugin built four ways by the test suite (see tests/tests.am):
 *   TP_GOOD       loads, registers a listener, a route, a metric and a bus
 *                 subscription, claims pile 99000000000001 and answers commands
 *   TP_WRONG_ABI  declares ABI major 99
 *   TP_ABI1       declares ABI 1.0, as a plugin built against the 1.0 header does (the 1.0
 *                 descriptor and API table are the prefix of 2.0's, so it must still load)
 *   TP_FAIL_INIT  init returns an error
 *   TP_NO_SYMBOL  exports no entry point
 * It uses only <evcs/plugin.h>, like a third-party plugin.
 */
#include <evcs/plugin.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TP_NO_SYMBOL
#define UNUSED __attribute__((unused)) /* the TP_FAIL_INIT build uses none of them */
static const evcs_api_t *A;
static UNUSED evcs_plugin_t *P;
static evcs_metric_t *lines;
static int seen_online;

static UNUSED void on_read(evcs_conn_t *c, void *ud)
{
	struct evbuffer *in = A->conn_input(c);
	char *line;
	size_t n;
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		A->metric_add(lines, 1);
		char out[128];
		if (strcmp(line, "PING") == 0)
			snprintf(out, sizeof out, "PONG\n");
		else if (strcmp(line, "ONLINE") == 0)
			snprintf(out, sizeof out, "ONLINE %d\n", seen_online);
		else if (strcmp(line, "BYE") == 0) {
			A->conn_write(c, "BYE\n", 4);
			A->conn_close(c, 1, "client said bye");
			free(line);
			return;
		} else
			snprintf(out, sizeof out, "ERR %s\n", line);
		A->conn_write(c, out, strlen(out));
		free(line);
	}
}

static UNUSED const evcs_conn_handlers_t H = {.size = sizeof H, .on_read = on_read};

static UNUSED void route(evcs_http_req_t *r, void *ud)
{
	const char *who = A->http_query(r, "who");
	char body[128];
	snprintf(body, sizeof body, "{\"hello\":\"%s\"}", who ? who : "world");
	A->http_reply(r, 200, "application/json", body, strlen(body));
}

static UNUSED int on_online(const evcs_event_t *ev, void *ud)
{
	seen_online++;
	return EVCS_OK;
}

static UNUSED int on_cmd(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud)
{
	if (strcmp(c->name, "echo") == 0) {
		A->command_reply(cmd, EVCS_OK, c->args_json ? c->args_json : "{}");
		return EVCS_OK;
	}
	if (strcmp(c->name, "never") == 0)
		return EVCS_OK; /* accepted, never answered: the core times it out */
	return EVCS_ENOTSUP;
}

static int tp_init(evcs_plugin_t *p, const evcs_api_t *api)
{
#ifdef TP_FAIL_INIT
	api->log(p, EVCS_LOG_ERR, 0, NULL, "failing on purpose");
	return EVCS_ERR;
#else
	A = api;
	P = p;
	long long port;
	if (api->config_int(p, "port", 0, 0, 65535, &port) != EVCS_OK)
		return EVCS_EINVAL;
	evcs_listen_opts_t o = {.size = sizeof o, .addr = "127.0.0.1", .port = (int)port,
				.idle_timeout_ms = 5000, .max_per_addr = 4};
	if (!api->listen(p, &o, &H, NULL))
		return EVCS_ERR;
	if (api->http_route(p, "GET", "/testplug/hello", route, NULL) != EVCS_OK)
		return EVCS_ERR;
	lines = api->metric_new(p, "evcs_testplug_lines_total", "lines read", EVCS_METRIC_COUNTER);
	api->bus_subscribe(p, EVCS_EV_PILE_ONLINE, EVCS_PRIO_NORMAL, on_online, NULL, NULL);
	api->pile_claim(p, 1, "99000000000001", on_cmd, NULL);
	api->log(p, EVCS_LOG_NOTICE, 0, NULL, "greeting=%s",
		 api->config_get(p, "greeting") ? api->config_get(p, "greeting") : "(none)");
	return EVCS_OK;
#endif
}

static void tp_cleanup(evcs_plugin_t *p)
{
	if (A)
		A->log(p, EVCS_LOG_NOTICE, 0, NULL, "testplug cleanup");
}

static void tp_reload(evcs_plugin_t *p)
{
	A->log(p, EVCS_LOG_NOTICE, 0, NULL, "reloaded greeting=%s",
	       A->config_get(p, "greeting") ? A->config_get(p, "greeting") : "(none)");
}

/* `evcsctl testplug ARGS`: proves plugin subcommands reach evcsctl */
static int tp_cli(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		printf("Usage: evcsctl testplug echo WORDS...\n");
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "echo") != 0) {
		fprintf(stderr, "testplug: unknown subcommand\n");
		return 2;
	}
	for (int i = 2; i < argc; i++)
		printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
	return 0;
}

static const evcs_plugin_info_t info = {
    .size = sizeof info,
#if defined TP_WRONG_ABI
    .abi_major = 99,
    .abi_minor = EVCS_ABI_MINOR,
#elif defined TP_ABI1
    .abi_major = 1,
    .abi_minor = 0,
#else
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
#endif
    .name = "testplug",
    .version = "1.2.3",
    .description = "test plugin",
    .init = tp_init,
    .cleanup = tp_cleanup,
    .reload = tp_reload,
    .cli_name = "testplug",
    .cli_summary = "test plugin subcommand",
    .cli_main = tp_cli,
};
EVCS_PLUGIN_DECLARE(info)
#else
int evcs_not_an_entry_point(void);
int evcs_not_an_entry_point(void) { return 0; }
#endif
