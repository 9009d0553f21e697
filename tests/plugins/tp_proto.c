/*
 * tp_proto.c: a second protocol plugin for the test suite and the records benchmark, with
 * identities nothing like YKC's (pile "CP-ALPHA-0001", trade numbers such as "txn-42-α").
 * It drives the protocol-neutral session model of ABI 2 (api->session_authorize, session_open,
 * session_meter, session_close) and keeps its raw evidence in its own table
 * tp_proto_evidence (its migration tests/plugins/tp_proto_schema/001_evidence.sql, compiled in
 * by core/evcs-embed-sql), written by the core inside the close's transaction. It uses only <evcs/plugin.h>, like a third-party plugin.
 *
 * Wire: one text line per request on [plugin tp_proto] listen = ADDR:PORT, answered with one
 * line that starts with the request's tag (answers may come out of order):
 *   HELLO tag PILE                    -> tag ok TENANT PILE_ID | tag refused REASON
 *   AUTH tag KIND TOKEN               -> tag STATUS RESULT DRIVER CARD BALANCE PIN_HASH|-
 *        KIND card|account|vin
 *   OPEN tag GUN TRADE MODE [TOKEN]   -> tag STATUS SESSION_ID CREATED
 *   METER tag GUN TRADE TS_MS KWH AMOUNT SOC -> tag STATUS
 *   CLOSE tag GUN TRADE START_MS END_MS TOTAL_KWH PILE_AMOUNT DIGEST PERIODS EVIDENCE [MODE]
 *        PERIODS "-" (the core splits by its readings) or k0,k1,k2,k3 (0.0001 kWh)
 *        EVIDENCE ok | fail (a statement that cannot run) | none
 *     -> tag STATUS SESSION_ID DUPLICATE CONFLICT MISMATCH TOTAL_AMOUNT ALARM_ID
 * STATUS is api->status_name(); one connection speaks for one pile after HELLO.
 */
#include <evcs/plugin.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const evcs_api_t *A;
static evcs_plugin_t *P;
static evcs_listener_t *L;

struct tp_conn {
	evcs_conn_t *c;
	int64_t tenant, pile_id;
	char pile[EVCS_ID_MAX + 1];
	int refs; /* requests in flight + 1 while connected */
};

struct tp_req {
	struct tp_conn *tc;
	char tag[32];
};

static void conn_unref(struct tp_conn *tc)
{
	if (--tc->refs == 0)
		free(tc);
}

static void answer(struct tp_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer(struct tp_req *r, const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof line, "%s ", r->tag);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	if (r->tc->c)
		A->conn_write(r->tc->c, line, strlen(line));
	conn_unref(r->tc);
	free(r);
}

static struct tp_req *req_new(struct tp_conn *tc, const char *tag)
{
	struct tp_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->tc = tc;
	snprintf(r->tag, sizeof r->tag, "%s", tag);
	tc->refs++;
	return r;
}

/* ---- HELLO: the core's pile.login storage operation (ABI 1 JSON, still the login path) ---- */

static int64_t json_int_after(const char *js, const char *key)
{
	const char *p = js ? strstr(js, key) : NULL;
	return p ? strtoll(p + strlen(key), NULL, 10) : 0;
}

static void login_done(int status, const char *result_json, void *ud)
{
	struct tp_req *r = ud;
	if (status == EVCS_OK && result_json && strstr(result_json, "\"accepted\":true")) {
		r->tc->tenant = json_int_after(result_json, "\"tenant_id\":");
		r->tc->pile_id = json_int_after(result_json, "\"pile_id\":");
		if (r->tc->c)
			A->conn_set_identity(r->tc->c, r->tc->tenant, r->tc->pile);
		answer(r, "ok %lld %lld", (long long)r->tc->tenant, (long long)r->tc->pile_id);
	} else {
		answer(r, "refused %s", A->status_name(status));
	}
}

/* ---- the session model ------------------------------------------------------------------ */

static void auth_done(int status, const evcs_auth_result_info_t *i, void *ud)
{
	answer(ud, "%s %d %lld %lld %lld %s", A->status_name(status), i ? i->result : -1,
	       (long long)(i ? i->driver_id : 0), (long long)(i ? i->card_id : 0),
	       (long long)(i ? i->balance : 0), i && i->pin_hash ? i->pin_hash : "-");
}

static void open_done(int status, const evcs_session_result_t *r, void *ud)
{
	answer(ud, "%s %lld %d", A->status_name(status), (long long)(r ? r->session_id : 0),
	       r ? r->created : 0);
}

static void close_done(int status, const evcs_session_result_t *r, void *ud)
{
	/* a real protocol acknowledges the pile here: the close is committed */
	answer(ud, "%s %lld %d %d %d %lld %lld", A->status_name(status),
	       (long long)(r ? r->session_id : 0), r ? r->duplicate : 0, r ? r->conflict : 0,
	       r ? r->mismatch : 0, (long long)(r ? r->total_amount : 0),
	       (long long)(r ? r->alarm_id : 0));
}

static void handle(struct tp_conn *tc, char *line)
{
	char *save = NULL, *argv[16];
	int argc = 0;
	for (char *t = strtok_r(line, " ", &save); t && argc < 16; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	if (argc < 2)
		return;
	struct tp_req *r = req_new(tc, argv[1]);
	if (!r)
		return;
	const char *cmd = argv[0];
	int rc = EVCS_EINVAL;
	if (!strcmp(cmd, "HELLO") && argc == 3) {
		snprintf(tc->pile, sizeof tc->pile, "%s", argv[2]);
		char args[256];
		snprintf(args, sizeof args, "{\"serial\":\"%s\",\"gun_count\":2,\"peer\":\"%s\"}", argv[2],
			 tc->c ? A->conn_peer(tc->c) : "");
		rc = A->store(P, "pile.login", args, login_done, r);
	} else if (!tc->pile_id) {
		answer(r, "not_logged_in");
		return;
	} else if (!strcmp(cmd, "AUTH") && argc == 4) {
		evcs_auth_request_t a = {.size = sizeof a, .tenant_id = tc->tenant, .pile_id = tc->pile_id,
					 .gun = 1, .id_token = argv[3]};
		a.id_kind = !strcmp(argv[2], "vin") ? EVCS_IDK_VIN
			    : !strcmp(argv[2], "account") ? EVCS_IDK_ACCOUNT
							  : EVCS_IDK_CARD;
		rc = A->session_authorize(P, &a, auth_done, r);
	} else if (!strcmp(cmd, "OPEN") && (argc == 5 || argc == 6)) {
		evcs_session_open_t o = {.size = sizeof o, .tenant_id = tc->tenant, .pile_id = tc->pile_id,
					 .pile = tc->pile, .gun = atoi(argv[2]), .trade_no = argv[3],
					 .start_mode = argv[4], .id_token = argc == 6 ? argv[5] : NULL};
		rc = A->session_open(P, &o, open_done, r);
	} else if (!strcmp(cmd, "METER") && argc == 8) {
		evcs_meter_reading_t m = {.size = sizeof m, .tenant_id = tc->tenant, .pile_id = tc->pile_id,
					  .pile = tc->pile, .gun = atoi(argv[2]), .trade_no = argv[3],
					  .ts_ms = strtoll(argv[4], NULL, 10),
					  .kwh = strtoll(argv[5], NULL, 10),
					  .amount = strtoll(argv[6], NULL, 10), .voltage_dv = 3800,
					  .current_da = 1000, .soc = atoi(argv[7]), .gun_temp_c = 30,
					  .batt_max_temp_c = 28, .remaining_min = 20};
		rc = A->session_meter(P, &m);
		if (rc == EVCS_OK) {
			answer(r, "ok");
			return;
		}
	} else if (!strcmp(cmd, "CLOSE") && (argc == 11 || argc == 12)) {
		evcs_session_close_t c = {.size = sizeof c, .tenant_id = tc->tenant, .pile_id = tc->pile_id,
					  .pile = tc->pile, .gun = atoi(argv[2]), .trade_no = argv[3],
					  .start_ms = strtoll(argv[4], NULL, 10),
					  .end_ms = strtoll(argv[5], NULL, 10), .meter_start = -1,
					  .meter_stop = -1, .total_kwh = strtoll(argv[6], NULL, 10),
					  .pile_amount = strtoll(argv[7], NULL, 10), .digest = argv[8],
					  .start_mode = argc == 12 ? argv[11] : NULL, .stop_reason = 64,
					  .stop_reason_text = "normal"};
		if (strcmp(argv[9], "-") != 0) {
			c.has_periods = 1;
			char *s2 = NULL;
			int q = 0;
			for (char *t = strtok_r(argv[9], ",", &s2); t && q < 4; t = strtok_r(NULL, ",", &s2)) {
				c.period[q].kwh = strtoll(t, NULL, 10);
				c.period[q].price = -1;
				c.period[q].amount = -1;
				q++;
			}
		}
		char raw[160];
		snprintf(raw, sizeof raw, "%s|%s|%s|%s", argv[3], argv[6], argv[7], argv[8]);
		evcs_db_param_t ev[] = {EVCS_DB_REFID(0), EVCS_DB_STR(argv[3]), EVCS_DB_STR(raw)};
		if (!strcmp(argv[10], "ok")) {
			/* the plain VALUES form: the core may write it with other closes' evidence in
			 * one multi-row INSERT */
			c.evidence_sql = "INSERT INTO tp_proto_evidence (tenant_id, session_id, trade_no, raw) "
					 "VALUES (?, ?, ?, ?)";
		} else if (!strcmp(argv[10], "fail")) {
			/* parses, but cannot run: the whole close must roll back */
			c.evidence_sql = "INSERT INTO tp_proto_evidence SET tenant_id = ?, session_id = ?, "
					 "trade_no = ?, no_such_column = ?";
		}
		if (c.evidence_sql) {
			c.evidence_params = ev;
			c.evidence_nparams = 3;
		}
		rc = A->session_close(P, &c, close_done, r);
	}
	if (rc != EVCS_OK)
		answer(r, "%s", A->status_name(rc));
}

static void on_read(evcs_conn_t *c, void *ud)
{
	(void)ud;
	struct tp_conn *tc = A->conn_get_data(c);
	struct evbuffer *in = A->conn_input(c);
	char *line;
	size_t n;
	while (tc && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		handle(tc, line);
		free(line);
	}
}

static int on_accept(evcs_conn_t *c, void *ud)
{
	(void)ud;
	struct tp_conn *tc = calloc(1, sizeof *tc);
	if (!tc)
		return -1;
	tc->c = c;
	tc->refs = 1;
	A->conn_set_data(c, tc);
	return 0;
}

static void on_close(evcs_conn_t *c, const char *reason, void *ud)
{
	(void)reason;
	(void)ud;
	struct tp_conn *tc = A->conn_get_data(c);
	if (!tc)
		return;
	tc->c = NULL; /* answers still due are dropped */
	conn_unref(tc);
}

static const evcs_conn_handlers_t H = {.size = sizeof H, .on_accept = on_accept,
				       .on_read = on_read, .on_close = on_close};

static int init(evcs_plugin_t *p, const evcs_api_t *api)
{
	A = api;
	P = p;
	if (!EVCS_API_HAS(api, session_close)) {
		api->log(p, EVCS_LOG_ERR, 0, NULL, "this core has no session model (ABI 2)");
		return -1;
	}
	long long port = 0;
	if (api->config_int(p, "port", 0, 0, 65535, &port) != EVCS_OK)
		return -1;
	evcs_listen_opts_t o = {.size = sizeof o, .addr = "127.0.0.1", .port = (int)port,
				.max_input = 1 << 20};
	L = api->listen(p, &o, &H, NULL);
	if (!L)
		return -1;
	api->log(p, EVCS_LOG_INFO, 0, NULL, "listening on port %d", api->listener_port(L));
	return 0;
}

static void cleanup(evcs_plugin_t *p) { (void)p; }

extern const evcs_migration_t tp_proto_migrations[]; /* tp_proto_migrations.c (generated) */

static const evcs_plugin_info_t info = {
    .size = sizeof info,
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "tp_proto",
    .version = "1",
    .description = "test protocol on the neutral session model",
    .init = init,
    .cleanup = cleanup,
    .migrations = tp_proto_migrations,
};

EVCS_PLUGIN_DECLARE(info)
