/*
 * test_core.c: the core's config parser, hook bus, command routing and
 * plugin loader, in process, against real test plugins built by the suite.
 */
#include "testutil.h"

#include "bus.h"
#include "config.h"
#include "core.h"
#include "log.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- config ------------------------------------------------------------ */

static evcs_conf_t *parse(const char *text, char *err)
{
	return evcs_conf_parse(text, "t.conf", err, 512);
}

static void test_config_good(void)
{
	char err[512] = "";
	evcs_conf_t *c = parse("# top comment\n\n[core]\nlog_level = debug\nworkers = 8\n"
			       "[http]\nlisten = \"127.0.0.1:9000\"\n"
			       "[plugin ykc]\nlisten = 0.0.0.0:8768/1.6 # not a comment\nrequired = no\n"
			       "[plugin cec]\nfile = /x/cec.so\n",
			       err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(evcs_conf_get(c, "core", "log_level", NULL), "debug");
	CU_ASSERT_STRING_EQUAL(evcs_conf_get(c, "http", "listen", NULL), "127.0.0.1:9000");
	long long w = 0;
	CU_ASSERT_EQUAL(evcs_conf_int(c, "core", "workers", 4, 1, 64, &w, err, sizeof err), 0);
	CU_ASSERT_EQUAL(w, 8);
	CU_ASSERT_EQUAL(evcs_conf_int(c, "core", "shutdown_timeout", 77, 0, 100, &w, err, sizeof err), 0);
	CU_ASSERT_EQUAL(w, 77);
	const evcs_conf_section_t *y = evcs_conf_section(c, "plugin", "ykc");
	CU_ASSERT_PTR_NOT_NULL_FATAL(y);
	CU_ASSERT_STRING_EQUAL(evcs_conf_sget(y, "listen"), "0.0.0.0:8768/1.6 # not a comment");
	CU_ASSERT_EQUAL(evcs_conf_bool(evcs_conf_sget(y, "required"), 1), 0);
	CU_ASSERT_EQUAL(c->sec[2].line, 8);
	CU_ASSERT_STRING_EQUAL(c->sec[3].arg, "cec");
	evcs_conf_free(c);
}

struct bad_case {
	const char *text;
	const char *expect; /* substring of the error, including "t.conf:LINE:" */
};

static void test_config_errors(void)
{
	static const struct bad_case cases[] = {
	    {"[core]\nlgo_level = info\n", "t.conf:2: unknown key 'lgo_level' in [core]"},
	    {"[core]\n[nosuch]\n", "t.conf:2: unknown section [nosuch]"},
	    {"log_level = info\n", "t.conf:1: key 'log_level' outside any [section]"},
	    {"[core]\nthis line has no equals\n", "t.conf:2: expected 'key = value'"},
	    {"[core\n", "t.conf:1: bad section header"},
	    {"[core]\n\n\nworkers = 1\nworkers = 2\n", "t.conf:5: duplicate key 'workers' (first at line 4)"},
	    {"[http]\n[http]\n", "t.conf:2: duplicate section [http] (first at line 1)"},
	    {"[plugin]\n", "t.conf:1: [plugin] needs a name"},
	    {"[plugin a]\nrequired = maybe\n", "t.conf:2: 'required' must be yes or no"},
	    {"[core]\nlog_level = \"info\n", "t.conf:2: unterminated quote"},
	    {"[core x]\n", "t.conf:1: [core] takes no argument"},
	    {"[plugin ok]\n[plugin ok]\n", "t.conf:2: duplicate section [plugin ok]"},
	    {NULL, NULL}};
	for (int i = 0; cases[i].text; i++) {
		char err[512] = "";
		evcs_conf_t *c = parse(cases[i].text, err);
		CU_ASSERT_PTR_NULL(c);
		if (!strstr(err, cases[i].expect)) {
			fprintf(stderr, "\ncase %d: got '%s', want '%s'\n", i, err, cases[i].expect);
			CU_FAIL("error message");
		}
		evcs_conf_free(c);
	}
	char err[512] = "";
	evcs_conf_t *c = parse("[core]\nworkers = 12x\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	long long w;
	CU_ASSERT_EQUAL(evcs_conf_int(c, "core", "workers", 4, 1, 64, &w, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: 'workers' must be an integer"));
	evcs_conf_free(c);
	c = parse("[core]\nworkers = 1000\n", err);
	CU_ASSERT_EQUAL(evcs_conf_int(c, "core", "workers", 4, 1, 64, &w, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: 'workers' = 1000 is out of range [1, 64]"));
	evcs_conf_free(c);
	c = parse("[scripts]\nmemory_limit = 8M\n", err);
	CU_ASSERT_EQUAL(evcs_conf_int(c, "scripts", "memory_limit", 0, 0, 1LL << 40, &w, err, sizeof err), 0);
	CU_ASSERT_EQUAL(w, 8 * 1024 * 1024);
	evcs_conf_free(c);
	CU_ASSERT_PTR_NULL(evcs_conf_load("/nonexistent/evcsd.conf", err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open"));
}

static void test_config_hostport(void)
{
	char h[64];
	int p;
	CU_ASSERT_EQUAL(evcs_conf_hostport("127.0.0.1:8080", h, sizeof h, &p), 0);
	CU_ASSERT_STRING_EQUAL(h, "127.0.0.1");
	CU_ASSERT_EQUAL(p, 8080);
	CU_ASSERT_EQUAL(evcs_conf_hostport("[::1]:443", h, sizeof h, &p), 0);
	CU_ASSERT_STRING_EQUAL(h, "::1");
	CU_ASSERT_EQUAL(evcs_conf_hostport("nohost", h, sizeof h, &p), -1);
	CU_ASSERT_EQUAL(evcs_conf_hostport("h:70000", h, sizeof h, &p), -1);
	CU_ASSERT_EQUAL(evcs_conf_hostport(":80", h, sizeof h, &p), -1);
}

/* ---- bus ---------------------------------------------------------------- */

static char order[64];
static evcs_sub_t *self_sub;
static evcs_bus_t *gbus;

static int rec_a(const evcs_event_t *ev, void *ud) { strcat(order, "a"); return EVCS_OK; }
static int rec_b(const evcs_event_t *ev, void *ud) { strcat(order, "b"); return EVCS_DEFER; }
static int rec_c(const evcs_event_t *ev, void *ud) { strcat(order, "c"); return EVCS_OK; }
static int rec_veto(const evcs_event_t *ev, void *ud) { strcat(order, "V"); return EVCS_VETO; }
static int rec_bad(const evcs_event_t *ev, void *ud) { strcat(order, "X"); return -77; }
static int rec_unsub_self(const evcs_event_t *ev, void *ud)
{
	strcat(order, "u");
	evcs_bus_unsubscribe(self_sub);
	return EVCS_OK;
}
static int rec_sub_more(const evcs_event_t *ev, void *ud)
{
	strcat(order, "s");
	evcs_bus_subscribe(gbus, EVCS_EV_GUN_STATUS, -500, rec_a, NULL, "late", NULL);
	return EVCS_OK;
}
static int rec_fields(const evcs_event_t *ev, void *ud)
{
	int64_t *out = ud;
	out[0] = evcs_event_get_int(ev, "kwh", -1);
	out[1] = evcs_event_get_str(ev, "trade_no") ? (int64_t)strlen(evcs_event_get_str(ev, "trade_no")) : -1;
	out[2] = evcs_event_get_int(ev, "missing", -5);
	out[3] = ev->ts_ms > 0;
	out[4] = ev->source && strcmp(ev->source, "tester") == 0;
	return EVCS_OK;
}
static int rec_recurse(const evcs_event_t *ev, void *ud)
{
	strcat(order, "r");
	return evcs_bus_publish(gbus, ev, "loop") == EVCS_EBUSY ? EVCS_OK : EVCS_OK;
}

static evcs_event_t mk(uint32_t type)
{
	evcs_event_t e = {.size = sizeof e, .type = type, .tenant_id = 1, .pile = "32010600019236"};
	return e;
}

static void test_bus_order_and_priority(void)
{
	struct event_base *base = event_base_new();
	evcs_bus_t *b = evcs_bus_new(base);
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, 10, rec_c, NULL, "t", NULL);
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, -10, rec_a, NULL, "t", NULL);
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, 0, rec_b, NULL, "t", NULL);
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, 10, rec_a, NULL, "t", NULL); /* same prio: after c */
	order[0] = 0;
	evcs_event_t e = mk(EVCS_EV_GUN_STATUS);
	CU_ASSERT_EQUAL(evcs_bus_publish(b, &e, "tester"), EVCS_OK);
	CU_ASSERT_STRING_EQUAL(order, "abca");
	/* other event types do not see it */
	order[0] = 0;
	e = mk(EVCS_EV_PILE_ONLINE);
	evcs_bus_publish(b, &e, "tester");
	CU_ASSERT_STRING_EQUAL(order, "");
	evcs_bus_stats_t st;
	evcs_bus_get_stats(b, &st);
	CU_ASSERT_EQUAL(st.published[EVCS_EV_GUN_STATUS], 1);
	CU_ASSERT_EQUAL(st.delivered, 4);
	/* invalid events are refused */
	evcs_event_t bad = mk(EVCS_EV__COUNT + 5);
	CU_ASSERT_EQUAL(evcs_bus_publish(b, &bad, "tester"), EVCS_EINVAL);
	CU_ASSERT_EQUAL(evcs_bus_subscribe(b, 0, 0, rec_a, NULL, "t", NULL), EVCS_EINVAL);
	evcs_bus_free(b);
	event_base_free(base);
}

static void test_bus_veto(void)
{
	struct event_base *base = event_base_new();
	evcs_bus_t *b = evcs_bus_new(base);
	evcs_bus_subscribe(b, EVCS_EV_SESSION_START, 0, rec_a, NULL, "t", NULL);
	evcs_bus_subscribe(b, EVCS_EV_SESSION_START, 1, rec_veto, NULL, "policy", NULL);
	evcs_bus_subscribe(b, EVCS_EV_SESSION_START, 2, rec_c, NULL, "t", NULL);
	order[0] = 0;
	evcs_event_t e = mk(EVCS_EV_SESSION_START);
	CU_ASSERT_EQUAL(evcs_bus_publish(b, &e, "tester"), EVCS_VETO);
	CU_ASSERT_STRING_EQUAL(order, "aV"); /* c never ran */
	/* a veto on a non-vetoable event is ignored, and so is a bad return code */
	evcs_bus_subscribe(b, EVCS_EV_METER_SAMPLE, 0, rec_veto, NULL, "rude", NULL);
	evcs_bus_subscribe(b, EVCS_EV_METER_SAMPLE, 1, rec_bad, NULL, "broken", NULL);
	evcs_bus_subscribe(b, EVCS_EV_METER_SAMPLE, 2, rec_c, NULL, "t", NULL);
	order[0] = 0;
	e = mk(EVCS_EV_METER_SAMPLE);
	CU_ASSERT_EQUAL(evcs_bus_publish(b, &e, "tester"), EVCS_OK);
	CU_ASSERT_STRING_EQUAL(order, "VXc");
	evcs_bus_stats_t st;
	evcs_bus_get_stats(b, &st);
	CU_ASSERT_EQUAL(st.vetoed, 1);
	CU_ASSERT_EQUAL(st.subscriber_errors, 2);
	evcs_bus_free(b);
	event_base_free(base);
}

static void test_bus_unsubscribe(void)
{
	struct event_base *base = event_base_new();
	evcs_bus_t *b = evcs_bus_new(base);
	gbus = b;
	evcs_sub_t *sa;
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, 0, rec_a, NULL, "t", &sa);
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, 1, rec_unsub_self, NULL, "t", &self_sub);
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, 2, rec_sub_more, NULL, "t", NULL);
	evcs_bus_subscribe(b, EVCS_EV_GUN_STATUS, 3, rec_c, NULL, "other", NULL);
	order[0] = 0;
	evcs_event_t e = mk(EVCS_EV_GUN_STATUS);
	evcs_bus_publish(b, &e, "tester");
	/* the self-removing one ran once; the one added mid-dispatch waits */
	CU_ASSERT_STRING_EQUAL(order, "ausc");
	order[0] = 0;
	evcs_bus_publish(b, &e, "tester");
	/* now: late 'a' (prio -500) first, 'u' gone, 's' adds another late one */
	CU_ASSERT_STRING_EQUAL(order, "aasc");
	evcs_bus_unsubscribe(sa);
	evcs_bus_unsubscribe_owner(b, "late");
	order[0] = 0;
	evcs_bus_publish(b, &e, "tester");
	CU_ASSERT_STRING_EQUAL(order, "sc");
	evcs_bus_unsubscribe_owner(b, "t");
	evcs_bus_unsubscribe_owner(b, "late");
	order[0] = 0;
	evcs_bus_publish(b, &e, "tester");
	CU_ASSERT_STRING_EQUAL(order, "c");
	evcs_bus_stats_t st;
	evcs_bus_get_stats(b, &st);
	CU_ASSERT_EQUAL(st.subscribers, 1);
	evcs_bus_free(b);
	event_base_free(base);
}

static void test_bus_fields_and_depth(void)
{
	struct event_base *base = event_base_new();
	evcs_bus_t *b = evcs_bus_new(base);
	gbus = b;
	int64_t out[5] = {0};
	evcs_bus_subscribe(b, EVCS_EV_METER_SAMPLE, 0, rec_fields, out, "t", NULL);
	evcs_field_t f[] = {EVCS_FI("kwh", 123456), EVCS_FS("trade_no", "32010600019236012001061803423060")};
	evcs_event_t e = mk(EVCS_EV_METER_SAMPLE);
	e.fields = f;
	e.nfields = 2;
	evcs_bus_publish(b, &e, "tester");
	CU_ASSERT_EQUAL(out[0], 123456);
	CU_ASSERT_EQUAL(out[1], 32);
	CU_ASSERT_EQUAL(out[2], -5);
	CU_ASSERT_EQUAL(out[3], 1);
	CU_ASSERT_EQUAL(out[4], 1);
	/* a subscriber that republishes its own event is stopped at the depth cap */
	evcs_bus_subscribe(b, EVCS_EV_ALARM_RAISED, 0, rec_recurse, NULL, "loop", NULL);
	order[0] = 0;
	e = mk(EVCS_EV_ALARM_RAISED);
	CU_ASSERT_EQUAL(evcs_bus_publish(b, &e, "tester"), EVCS_OK);
	CU_ASSERT_EQUAL(strlen(order), EVCS_BUS_MAX_DEPTH);
	evcs_bus_stats_t st;
	evcs_bus_get_stats(b, &st);
	CU_ASSERT_EQUAL(st.refused_depth, 1);
	/* an event from an older, smaller publisher struct is accepted */
	evcs_event_t small = mk(EVCS_EV_METER_SAMPLE);
	small.size = (uint32_t)offsetof(evcs_event_t, source);
	small.fields = f;
	small.nfields = 1;
	out[0] = 0;
	CU_ASSERT_EQUAL(evcs_bus_publish(b, &small, "tester"), EVCS_OK);
	CU_ASSERT_EQUAL(out[0], 123456);
	evcs_bus_free(b);
	event_base_free(base);
}

/* ---- commands ------------------------------------------------------------ */

struct cmd_result {
	int done;
	int status;
	char json[256];
};

static void cmd_done(int status, const char *json, void *ud)
{
	struct cmd_result *r = ud;
	r->done++;
	r->status = status;
	snprintf(r->json, sizeof r->json, "%s", json ? json : "");
}

static evcs_cmd_t *held;
static int owner_handler(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud)
{
	if (!strcmp(c->name, "hold")) {
		held = cmd;
		return EVCS_OK;
	}
	if (!strcmp(c->name, "now")) {
		evcs_bus_command_reply(cmd, EVCS_OK, "{\"result\":0}");
		return EVCS_OK;
	}
	return EVCS_ENOTSUP;
}

static void run_until(struct event_base *base, int *flag, int want)
{
	for (int i = 0; i < 500 && *flag < want; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(2000);
}

static void test_commands(void)
{
	struct event_base *base = event_base_new();
	evcs_bus_t *b = evcs_bus_new(base);
	evcs_bus_pile_claim(b, "ykc", 7, "32010600019236", owner_handler, NULL);
	int64_t t = 0;
	CU_ASSERT_STRING_EQUAL(evcs_bus_pile_owner(b, "32010600019236", &t), "ykc");
	CU_ASSERT_EQUAL(t, 7);

	struct cmd_result r = {0};
	evcs_command_t c = {.size = sizeof c, .tenant_id = 7, .pile = "32010600019236", .gun = 1, .name = "now"};
	CU_ASSERT_EQUAL(evcs_bus_command_send(b, &c, 1000, cmd_done, &r, "api"), EVCS_OK);
	CU_ASSERT_EQUAL(r.done, 1); /* answered synchronously by the owner */
	CU_ASSERT_EQUAL(r.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(r.json, "{\"result\":0}");

	/* unknown command name: not supported, delivered asynchronously */
	struct cmd_result r2 = {0};
	c.name = "dance";
	evcs_bus_command_send(b, &c, 1000, cmd_done, &r2, "api");
	CU_ASSERT_EQUAL(r2.done, 0);
	run_until(base, &r2.done, 1);
	CU_ASSERT_EQUAL(r2.status, EVCS_ENOTSUP);

	/* another tenant cannot reach the pile: it looks offline */
	struct cmd_result r3 = {0};
	c.name = "now";
	c.tenant_id = 8;
	evcs_bus_command_send(b, &c, 1000, cmd_done, &r3, "api");
	run_until(base, &r3.done, 1);
	CU_ASSERT_EQUAL(r3.status, EVCS_EOFFLINE);

	/* timeout, then the owner's late reply is dropped without a second done */
	struct cmd_result r4 = {0};
	c.tenant_id = 7;
	c.name = "hold";
	evcs_bus_command_send(b, &c, 30, cmd_done, &r4, "api");
	run_until(base, &r4.done, 1);
	CU_ASSERT_EQUAL(r4.status, EVCS_ETIMEDOUT);
	evcs_bus_command_reply(held, EVCS_OK, "{}");
	CU_ASSERT_EQUAL(r4.done, 1);

	/* pending command fails as offline when the pile disconnects */
	struct cmd_result r5 = {0};
	evcs_bus_command_send(b, &c, 5000, cmd_done, &r5, "api");
	evcs_bus_pile_release(b, "ykc", "32010600019236");
	CU_ASSERT_EQUAL(r5.done, 1);
	CU_ASSERT_EQUAL(r5.status, EVCS_EOFFLINE);
	CU_ASSERT_PTR_NULL(evcs_bus_pile_owner(b, "32010600019236", NULL));

	/* vetoed by a COMMAND_REQUESTED subscriber */
	evcs_bus_pile_claim(b, "ykc", 7, "32010600019236", owner_handler, NULL);
	evcs_bus_subscribe(b, EVCS_EV_COMMAND_REQUESTED, 0, rec_veto, NULL, "policy", NULL);
	struct cmd_result r6 = {0};
	c.name = "now";
	evcs_bus_command_send(b, &c, 1000, cmd_done, &r6, "api");
	run_until(base, &r6.done, 1);
	CU_ASSERT_EQUAL(r6.status, EVCS_VETO);
	evcs_bus_stats_t st;
	evcs_bus_get_stats(b, &st);
	CU_ASSERT_EQUAL(st.commands_pending, 0);
	evcs_bus_free(b);
	event_base_free(base);
}

/* ---- plugin loading --------------------------------------------------------- */

static char conf_path[256];

static int start_with(evcs_core_t *core, const char *plugins, char *err, size_t errlen)
{
	snprintf(conf_path, sizeof conf_path, "/tmp/evcs-test-core-%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	fprintf(f, "[core]\nlog_level = err\nplugin_dir = %s\n[http]\nlisten = 127.0.0.1:0\n%s",
		TEST_PLUGIN_DIR, plugins);
	fclose(f);
	memset(core, 0, sizeof *core);
	return evcs_core_start(core, conf_path, err, errlen);
}

static void test_plugin_good(void)
{
	evcs_core_t core;
	char err[512] = "";
	int r = start_with(&core, "[plugin testplug]\nfile = tp_good.so\ngreeting = hi\n", err, sizeof err);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_EQUAL(core.nplugins, 1);
	CU_ASSERT_TRUE(core.plugins[0]->initialised);
	CU_ASSERT_STRING_EQUAL(core.plugins[0]->info->version, "1.2.3");
	CU_ASSERT_STRING_EQUAL(evcs_bus_pile_owner(core.bus, "99000000000001", NULL), "testplug");
	/* commands reach the plugin through the bus */
	struct cmd_result res = {0};
	evcs_command_t c = {.size = sizeof c, .tenant_id = 1, .pile = "99000000000001", .name = "echo",
			    .args_json = "{\"x\":1}"};
	evcs_bus_command_send(core.bus, &c, 1000, cmd_done, &res, "test");
	CU_ASSERT_EQUAL(res.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(res.json, "{\"x\":1}");
	evcs_core_free(&core);
	unlink(conf_path);
}

static void test_plugin_refusals(void)
{
	evcs_core_t core;
	char err[512];
	/* wrong ABI, required: start fails */
	CU_ASSERT_EQUAL(start_with(&core, "[plugin testplug]\nfile = tp_wrong_abi.so\n", err, sizeof err), -1);
	evcs_core_free(&core);
	/* failing init, required: start fails; optional: goes on without it */
	CU_ASSERT_EQUAL(start_with(&core, "[plugin testplug]\nfile = tp_fail_init.so\n", err, sizeof err), -1);
	evcs_core_free(&core);
	CU_ASSERT_EQUAL(start_with(&core, "[plugin testplug]\nfile = tp_fail_init.so\nrequired = no\n", err, sizeof err), 0);
	CU_ASSERT_EQUAL(core.nplugins, 0);
	evcs_core_free(&core);
	/* missing symbol and missing file, optional: skipped */
	CU_ASSERT_EQUAL(start_with(&core, "[plugin a]\nfile = tp_no_symbol.so\nrequired = no\n"
					  "[plugin b]\nfile = nosuch.so\nrequired = no\n"
					  "[plugin testplug]\nfile = tp_good.so\n", err, sizeof err), 0);
	CU_ASSERT_EQUAL(core.nplugins, 1);
	evcs_core_free(&core);
	/* a plugin built for ABI 1.0 still loads on this 2.x core */
	CU_ASSERT_EQUAL(start_with(&core, "[plugin testplug]\nfile = tp_abi1.so\n", err, sizeof err), 0);
	CU_ASSERT_EQUAL(core.nplugins, 1);
	if (core.nplugins == 1)
		CU_ASSERT_EQUAL(core.plugins[0]->info->abi_major, 1);
	evcs_core_free(&core);
	/* disabled plugins are not loaded */
	CU_ASSERT_EQUAL(start_with(&core, "[plugin testplug]\nfile = tp_good.so\nenabled = no\n", err, sizeof err), 0);
	CU_ASSERT_EQUAL(core.nplugins, 0);
	evcs_core_free(&core);

	/* the probe explains each refusal */
	char path[1024];
	const evcs_plugin_info_t *info;
	void *dl;
	CU_ASSERT_EQUAL(evcs_plugin_probe(TEST_PLUGIN_DIR, "x", "tp_wrong_abi.so", path, sizeof path, &info, &dl, err, sizeof err), EVCS_ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "built for plugin ABI 99."));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "loads plugins of ABI 1 to 2"));
	CU_ASSERT_EQUAL(evcs_plugin_probe(TEST_PLUGIN_DIR, "x", "tp_no_symbol.so", path, sizeof path, &info, &dl, err, sizeof err), EVCS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "has no evcs_plugin_entry symbol"));
	CU_ASSERT_EQUAL(evcs_plugin_probe(TEST_PLUGIN_DIR, "x", "nosuch.so", path, sizeof path, &info, &dl, err, sizeof err), EVCS_ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not found in plugin_dir"));
	unlink(conf_path);
}

static void test_status_names(void)
{
	CU_ASSERT_STRING_EQUAL(evcs_status_str(EVCS_OK), "ok");
	CU_ASSERT_STRING_EQUAL(evcs_status_str(EVCS_ETIMEDOUT), "timeout");
	CU_ASSERT_STRING_EQUAL(evcs_status_str(EVCS_EOFFLINE), "offline");
	CU_ASSERT_STRING_EQUAL(evcs_status_str(EVCS_EREFUSED), "refused");
	CU_ASSERT_STRING_EQUAL(evcs_status_str(-99), "unknown");
}

static int suite_init(void)
{
	evthread_use_pthreads();
	evcs_log_setup(EVCS_LOG_ERR, 0, "test");
	return 0;
}

static void reg(void)
{
	CU_pSuite s = CU_add_suite("config", suite_init, NULL);
	EVCS_ADD(s, test_config_good);
	EVCS_ADD(s, test_config_errors);
	EVCS_ADD(s, test_config_hostport);
	s = CU_add_suite("bus", suite_init, NULL);
	EVCS_ADD(s, test_bus_order_and_priority);
	EVCS_ADD(s, test_bus_veto);
	EVCS_ADD(s, test_bus_unsubscribe);
	EVCS_ADD(s, test_bus_fields_and_depth);
	EVCS_ADD(s, test_commands);
	s = CU_add_suite("plugins", suite_init, NULL);
	EVCS_ADD(s, test_plugin_good);
	EVCS_ADD(s, test_plugin_refusals);
	EVCS_ADD(s, test_status_names);
}

EVCS_TEST_MAIN(reg)
