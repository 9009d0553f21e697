/*
 * tests/test_sim.c: the YKC charger simulator (plugins/ykc/sim.h) against a
 * scripted YKC server on loopback (tests/bench/ykc_stub.h), both on one event
 * loop in this process. Each test reads as a specification of what a real pile
 * does on the wire: log in, fetch the billing model, beat per gun, answer remote
 * start/stop, send a record whose per-period energy follows the tariff and the
 * simulated clock, resend it until acknowledged, reconnect after a drop.
 */
#include "sim.h"
#include "testutil.h"
#include "ykc_stub.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_CAP 8192

struct logged {
	uint8_t type;
	unsigned conn; /* which login of this pile (1 = first connection) */
	int64_t us;
	struct evcs_ykc_msg m;
};

struct fx {
	struct event_base *base;
	struct event *tick;
	struct evcs_stub *stub;
	evcs_sim_t *sim;
	struct evcs_sim_config cfg;
	struct logged *log;
	int nlog;
	unsigned conns;
	unsigned ev[16];
	struct evcs_ykc_record rec; /* last SESSION_END record */
	struct evcs_stub_conn *last_conn;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_frame(void *arg, struct evcs_stub_conn *c, const struct evcs_ykc_frame *f,
		     const struct evcs_ykc_msg *m)
{
	struct fx *x = arg;
	if (f->type == 0x01)
		x->conns++;
	x->last_conn = c;
	if (x->nlog < LOG_CAP) {
		struct logged *l = &x->log[x->nlog++];
		l->type = f->type;
		l->conn = x->conns;
		l->us = now_us();
		l->m = *m;
	}
}

static void on_close(void *arg, struct evcs_stub_conn *c)
{
	struct fx *x = arg;
	if (x->last_conn == c)
		x->last_conn = NULL;
}

static void on_event(void *arg, const struct evcs_sim_event *ev)
{
	struct fx *x = arg;
	if (ev->type < 16)
		x->ev[ev->type]++;
	if (ev->type == EVCS_SIM_EV_SESSION_END)
		x->rec = *ev->record;
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {}

static void fx_init(struct fx *x)
{
	memset(x, 0, sizeof(*x));
	x->base = event_base_new();
	x->log = calloc(LOG_CAP, sizeof(*x->log));
	struct evcs_stub_opts o;
	evcs_stub_opts_default(&o);
	o.on_frame = on_frame;
	o.on_close = on_close;
	o.arg = x;
	x->stub = evcs_stub_new(x->base, "127.0.0.1", 0, &o);
	CU_ASSERT_FATAL(x->base && x->log && x->stub);
	/* wake the loop often so run_until() checks its condition */
	x->tick = event_new(x->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 5000};
	event_add(x->tick, &tv);
	evcs_sim_config_default(&x->cfg);
	x->cfg.host = "127.0.0.1";
	x->cfg.port = evcs_stub_port(x->stub);
	x->cfg.reconnect_ms = 100;
	x->cfg.login_retry_ms = 1000;
	x->cfg.on_event = on_event;
	x->cfg.arg = x;
	x->cfg.seed = 42;
}

/* 2024-05-01 07:50:00 +08:00: ten minutes of valley before the 08:00 peak (stub tariff) */
#define T_0750 1714521000LL
#define T_0800_MS ((T_0750 + 600) * 1000)

static void fx_start(struct fx *x, unsigned piles, enum evcs_ykc_proto proto, unsigned guns)
{
	x->sim = evcs_sim_new(x->base, &x->cfg);
	CU_ASSERT_FATAL(x->sim != NULL);
	for (unsigned i = 0; i < piles; i++) {
		char serial[24];
		snprintf(serial, sizeof(serial), "320106000%05u", (i + 1) % 100000);
		CU_ASSERT_FATAL(evcs_sim_add_pile(x->sim, serial, proto, guns) == (int)i);
	}
	CU_ASSERT_FATAL(evcs_sim_start(x->sim) == 0);
}

static void fx_free(struct fx *x)
{
	evcs_sim_free(x->sim);
	evcs_stub_free(x->stub);
	event_free(x->tick);
	event_base_free(x->base);
	free(x->log);
}

typedef bool (*pred_fn)(struct fx *x, const void *arg);

static bool run_until(struct fx *x, pred_fn p, const void *arg, int timeout_ms)
{
	int64_t end = now_us() + (int64_t)timeout_ms * 1000;
	while (!p(x, arg)) {
		if (now_us() > end)
			return false;
		event_base_loop(x->base, EVLOOP_ONCE);
	}
	return true;
}

static bool never(struct fx *x, const void *arg) { return false; }
static void run_for(struct fx *x, int ms) { run_until(x, never, NULL, ms); }

static int count_type(const struct fx *x, uint8_t type)
{
	int n = 0;
	for (int i = 0; i < x->nlog; i++)
		n += x->log[i].type == type;
	return n;
}

static const struct logged *nth(const struct fx *x, uint8_t type, int k)
{
	for (int i = 0; i < x->nlog; i++)
		if (x->log[i].type == type && k-- == 0)
			return &x->log[i];
	return NULL;
}

static const struct logged *last_of(const struct fx *x, uint8_t type)
{
	for (int i = x->nlog - 1; i >= 0; i--)
		if (x->log[i].type == type)
			return &x->log[i];
	return NULL;
}

struct want_n {
	uint8_t type;
	int n;
};
static bool have_n(struct fx *x, const void *arg)
{
	const struct want_n *w = arg;
	return count_type(x, w->type) >= w->n;
}
static bool wait_n(struct fx *x, uint8_t type, int n, int ms)
{
	struct want_n w = {type, n};
	return run_until(x, have_n, &w, ms);
}

static bool ev_n(struct fx *x, const void *arg)
{
	const unsigned *w = arg;
	return x->ev[w[0]] >= w[1];
}
static bool wait_ev(struct fx *x, unsigned type, unsigned n, int ms)
{
	unsigned w[2] = {type, n};
	return run_until(x, ev_n, w, ms);
}

static void send_remote_start(struct fx *x, const char *pile, const char *gun, const char *trade)
{
	struct evcs_stub_conn *c = evcs_stub_find(x->stub, pile);
	CU_ASSERT_FATAL(c != NULL);
	struct evcs_ykc_msg m = {.type = 0x34};
	memcpy(m.u.remote_start.trade_no, trade, 33);
	memcpy(m.u.remote_start.pile, pile, 15);
	memcpy(m.u.remote_start.gun, gun, 3);
	memcpy(m.u.remote_start.logical_card, "0000001000000573", 17);
	m.u.remote_start.balance_yuan = 100000;
	CU_ASSERT(evcs_stub_send(c, &m) == 0);
}

static void send_pile_gun(struct fx *x, uint8_t type, const char *pile, const char *gun)
{
	struct evcs_stub_conn *c = evcs_stub_find(x->stub, pile);
	CU_ASSERT_FATAL(c != NULL);
	struct evcs_ykc_msg m = {.type = type};
	memcpy(m.u.pile_gun.pile, pile, 15);
	memcpy(m.u.pile_gun.gun, gun, 3);
	CU_ASSERT(evcs_stub_send(c, &m) == 0);
}

static int64_t cp56_ms(const struct evcs_ykc_cp56 *c)
{
	struct tm tm;
	unsigned ms;
	evcs_ykc_cp56_to_tm(c, &tm, &ms);
	return ((int64_t)timegm(&tm) - 8 * 3600) * 1000 + ms;
}

static uint32_t amount(uint32_t kwh, uint32_t price)
{
	return (uint32_t)(((uint64_t)kwh * price + 50000) / 100000);
}

/* ------------------------------------------------------------------------ */

static void test_login_and_billing_model(void)
{
	struct fx x;
	fx_init(&x);
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 2);
	CU_ASSERT_FATAL(wait_ev(&x, EVCS_SIM_EV_TARIFF, 1, 5000));
	const struct logged *l = nth(&x, 0x01, 0);
	CU_ASSERT_FATAL(l != NULL);
	CU_ASSERT_STRING_EQUAL(l->m.u.login.pile, "32010600000001");
	CU_ASSERT_EQUAL(l->m.u.login.protocol_version, 16);
	CU_ASSERT_EQUAL(l->m.u.login.gun_count, 2);
	/* first contact: model "0000" is different, so the pile asks for the model */
	const struct logged *v = nth(&x, 0x05, 0);
	CU_ASSERT_FATAL(v != NULL);
	CU_ASSERT_STRING_EQUAL(v->m.u.model.model, "0000");
	CU_ASSERT_EQUAL(count_type(&x, 0x09), 1);
	CU_ASSERT_EQUAL(x.ev[EVCS_SIM_EV_LOGIN_OK], 1);
	/* then real-time data for each idle gun */
	CU_ASSERT_TRUE(wait_n(&x, 0x13, 2, 2000));
	CU_ASSERT_EQUAL(nth(&x, 0x13, 0)->m.u.realtime.status, 2);
	struct evcs_sim_stats st;
	evcs_sim_get_stats(x.sim, &st);
	CU_ASSERT_EQUAL(st.ready, 1);
	CU_ASSERT_EQUAL(st.connected, 1);
	fx_free(&x);
}

static void test_login_v15_and_refused(void)
{
	struct fx x;
	fx_init(&x);
	evcs_stub_options(x.stub)->proto = EVCS_YKC_PROTO_15;
	x.cfg.refused_retry_ms = 200;
	x.sim = evcs_sim_new(x.base, &x.cfg);
	CU_ASSERT_FATAL(x.sim != NULL);
	CU_ASSERT_EQUAL(evcs_sim_add_pile(x.sim, "32010600000001", EVCS_YKC_PROTO_15, 1), 0);
	CU_ASSERT_EQUAL(evcs_sim_add_pile(x.sim, "32010600000001", EVCS_YKC_PROTO_16, 1), -EEXIST);
	CU_ASSERT_EQUAL(evcs_sim_add_pile(x.sim, "3201060000000", EVCS_YKC_PROTO_16, 1), -EINVAL);
	CU_ASSERT_EQUAL(evcs_sim_add_pile(x.sim, "32010600000009", EVCS_YKC_PROTO_16, 0), -EINVAL);
	evcs_sim_free(x.sim);
	evcs_stub_free(x.stub);
	/* a server that does not know 32010600000002 */
	struct evcs_stub_opts o;
	evcs_stub_opts_default(&o);
	o.proto = EVCS_YKC_PROTO_15;
	o.on_frame = on_frame;
	o.arg = &x;
	o.refuse_serial = "32010600000002";
	x.stub = evcs_stub_new(x.base, "127.0.0.1", 0, &o);
	x.cfg.port = evcs_stub_port(x.stub);
	fx_start(&x, 2, EVCS_YKC_PROTO_15, 1);
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_LOGIN_REFUSED, 2, 5000)); /* refused, retried, refused */
	CU_ASSERT_EQUAL(x.ev[EVCS_SIM_EV_LOGIN_OK], 1);
	CU_ASSERT_EQUAL(nth(&x, 0x01, 0)->m.u.login.protocol_version, 15);
	struct evcs_sim_stats st;
	evcs_sim_get_stats(x.sim, &st);
	CU_ASSERT(st.logins_refused >= 2);
	CU_ASSERT_EQUAL(st.logins_ok, 1);
	fx_free(&x);
}

static void test_heartbeat_per_gun_with_speed(void)
{
	struct fx x;
	fx_init(&x);
	x.cfg.speed = 100; /* 10 s heartbeat -> every 100 ms */
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 2);
	CU_ASSERT_FATAL(wait_ev(&x, EVCS_SIM_EV_TARIFF, 1, 5000));
	int before = count_type(&x, 0x03);
	run_for(&x, 1500);
	int per_gun[3] = {0};
	int64_t first[3] = {0}, last[3] = {0};
	for (int i = 0; i < x.nlog; i++) {
		if (x.log[i].type != 0x03)
			continue;
		int g = atoi(x.log[i].m.u.heartbeat.gun);
		CU_ASSERT_FATAL(g == 1 || g == 2);
		if (!first[g])
			first[g] = x.log[i].us;
		last[g] = x.log[i].us;
		per_gun[g]++;
	}
	CU_ASSERT(count_type(&x, 0x03) - before >= 20);
	for (int g = 1; g <= 2; g++) {
		/* one per gun per period: the mean interval is the period (100 ms real) */
		CU_ASSERT(per_gun[g] >= 10 && per_gun[g] <= 17);
		int64_t mean = (last[g] - first[g]) / (per_gun[g] - 1);
		CU_ASSERT(mean >= 80000 && mean <= 130000);
	}
	struct evcs_sim_stats st;
	evcs_sim_get_stats(x.sim, &st);
	CU_ASSERT(st.hb_acked >= st.hb_sent - 2);
	CU_ASSERT(st.rtt_n > 20);
	CU_ASSERT(st.rtt_p50_us > 0 && st.rtt_p50_us <= st.rtt_p99_us && st.rtt_p99_us <= st.rtt_max_us);
	fx_free(&x);
}

static const char *TRADE1 = "32010600000001012405010750000001";

/* Start with 0x34 at about 07:50 simulated, stop with 0x36 after 08:00. */
static void charge_across_0800(struct fx *x)
{
	x->cfg.speed = 600;
	x->cfg.clock_start = T_0750;
	x->cfg.power_w = 36000; /* 100 units of 0.0001 kWh per simulated second */
	fx_start(x, 1, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_FATAL(wait_ev(x, EVCS_SIM_EV_TARIFF, 1, 5000));
	send_remote_start(x, "32010600000001", "01", TRADE1);
	CU_ASSERT_FATAL(wait_n(x, 0x33, 1, 2000));
	const struct logged *r = nth(x, 0x33, 0);
	CU_ASSERT_STRING_EQUAL(r->m.u.remote_start_reply.trade_no, TRADE1);
	CU_ASSERT_EQUAL(r->m.u.remote_start_reply.result, 1);
	CU_ASSERT_EQUAL(r->m.u.remote_start_reply.fail_reason, 0);
	/* 0x13 with status 3 and the trade number follows the 0x33 */
	bool seen = false;
	for (int i = (int)(r - x->log) + 1; i < x->nlog && !seen; i++)
		seen = x->log[i].type == 0x13 && x->log[i].m.u.realtime.status == 3 &&
		       strcmp(x->log[i].m.u.realtime.trade_no, TRADE1) == 0;
	if (!seen) {
		CU_ASSERT_TRUE(wait_n(x, 0x13, count_type(x, 0x13) + 1, 2000));
		const struct logged *s = last_of(x, 0x13);
		seen = s->m.u.realtime.status == 3 && strcmp(s->m.u.realtime.trade_no, TRADE1) == 0;
	}
	CU_ASSERT_TRUE(seen);
	/* a second start on the busy gun is refused with reason 2 */
	send_remote_start(x, "32010600000001", "01", "32010600000001012405010750000002");
	CU_ASSERT_TRUE(wait_n(x, 0x33, 2, 2000));
	CU_ASSERT_EQUAL(nth(x, 0x33, 1)->m.u.remote_start_reply.result, 0);
	CU_ASSERT_EQUAL(nth(x, 0x33, 1)->m.u.remote_start_reply.fail_reason, 2);
	/* charge until 08:05 simulated: 10 + 5 minutes at x600 = 1.5 s */
	while (evcs_sim_now_ms(x->sim) < T_0800_MS + 5 * 60000)
		run_for(x, 50);
	send_pile_gun(x, 0x36, "32010600000001", "01");
	CU_ASSERT_FATAL(wait_n(x, 0x3B, 1, 2000));
}

static void test_remote_start_stop_record_follows_tariff(void)
{
	struct fx x;
	fx_init(&x);
	charge_across_0800(&x);
	const struct logged *s = nth(&x, 0x35, 0);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_EQUAL(s->m.u.remote_stop_reply.result, 1);
	CU_ASSERT(s < nth(&x, 0x3B, 0));
	const struct evcs_ykc_record *r = &nth(&x, 0x3B, 0)->m.u.record;
	CU_ASSERT_STRING_EQUAL(r->trade_no, TRADE1);
	CU_ASSERT_EQUAL(r->stop_reason, 0x40);
	CU_ASSERT_EQUAL(r->trade_flag, 1);
	int64_t t0 = cp56_ms(&r->start), t1 = cp56_ms(&r->end);
	CU_ASSERT(t0 < T_0800_MS && t1 > T_0800_MS);
	/* energy follows the simulated clock at 36 kW: 100 units per simulated second,
	 * valley before 08:00 and peak after (stub tariff), nothing else */
	int64_t valley = (T_0800_MS - t0) / 10, peak = (t1 - T_0800_MS) / 10;
	CU_ASSERT(llabs((int64_t)r->valley_kwh - valley) <= 1);
	CU_ASSERT(llabs((int64_t)r->peak_kwh - peak) <= 1);
	CU_ASSERT_EQUAL(r->sharp_kwh, 0);
	CU_ASSERT_EQUAL(r->flat_kwh, 0);
	CU_ASSERT_EQUAL(r->total_kwh, r->valley_kwh + r->peak_kwh);
	CU_ASSERT_EQUAL(r->meter_stop_kwh - r->meter_start_kwh, r->total_kwh);
	const struct evcs_ykc_tariff *t = &evcs_stub_options(x.stub)->tariff;
	CU_ASSERT_EQUAL(r->valley_price, t->valley_elec_rate + t->valley_service_rate);
	CU_ASSERT_EQUAL(r->peak_price, t->peak_elec_rate + t->peak_service_rate);
	CU_ASSERT_EQUAL(r->valley_amount, amount(r->valley_kwh, r->valley_price));
	CU_ASSERT_EQUAL(r->peak_amount, amount(r->peak_kwh, r->peak_price));
	CU_ASSERT_EQUAL(r->total_amount_yuan, r->valley_amount + r->peak_amount);
	/* the samples during the session grew and carried the trade number */
	uint32_t prev = 0;
	int samples = 0;
	for (int i = 0; i < x.nlog; i++)
		if (x.log[i].type == 0x13 && x.log[i].m.u.realtime.status == 3) {
			CU_ASSERT(x.log[i].m.u.realtime.kwh >= prev);
			prev = x.log[i].m.u.realtime.kwh;
			samples++;
		}
	CU_ASSERT(samples >= 10);
	CU_ASSERT(prev <= r->total_kwh);
	/* acknowledged by the stub: no resend */
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_RECORD_ACKED, 1, 2000));
	run_for(&x, 300);
	CU_ASSERT_EQUAL(count_type(&x, 0x3B), 1);
	/* after the record the gun reports idle; a stop now is refused (not charging) */
	CU_ASSERT_EQUAL(last_of(&x, 0x13)->m.u.realtime.status, 2);
	send_pile_gun(&x, 0x36, "32010600000001", "01");
	CU_ASSERT_TRUE(wait_n(&x, 0x35, 2, 2000));
	CU_ASSERT_EQUAL(nth(&x, 0x35, 1)->m.u.remote_stop_reply.result, 0);
	CU_ASSERT_EQUAL(nth(&x, 0x35, 1)->m.u.remote_stop_reply.fail_reason, 2);
	fx_free(&x);
}

static void test_record_resent_until_acknowledged(void)
{
	struct fx x;
	fx_init(&x);
	evcs_stub_options(x.stub)->ack_records = false;
	x.cfg.resend_s = 30; /* 50 ms real at x600 */
	x.cfg.resend_max = 3;
	charge_across_0800(&x);
	/* first send plus three resends, all identical, then the pile gives up */
	CU_ASSERT_TRUE(wait_n(&x, 0x3B, 4, 3000));
	run_for(&x, 500);
	CU_ASSERT_EQUAL(count_type(&x, 0x3B), 4);
	for (int k = 1; k < 4; k++)
		CU_ASSERT(memcmp(&nth(&x, 0x3B, k)->m.u.record, &nth(&x, 0x3B, 0)->m.u.record,
				 sizeof(struct evcs_ykc_record)) == 0);
	CU_ASSERT_EQUAL(x.ev[EVCS_SIM_EV_RECORD_RESENT], 3);
	fx_free(&x);

	/* an acknowledgement stops the resends */
	fx_init(&x);
	evcs_stub_options(x.stub)->ack_records = false;
	charge_across_0800(&x);
	CU_ASSERT_TRUE(wait_n(&x, 0x3B, 2, 3000));
	evcs_stub_options(x.stub)->ack_records = true;
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_RECORD_ACKED, 1, 3000));
	run_for(&x, 400);
	CU_ASSERT_EQUAL(count_type(&x, 0x3B), 3);
	fx_free(&x);
}

static void test_reconnect_and_resend_after_drop(void)
{
	struct fx x;
	fx_init(&x);
	evcs_stub_options(x.stub)->ack_records = false;
	x.cfg.resend_s = 3600; /* no timed resend: only the power-up upload */
	charge_across_0800(&x);
	CU_ASSERT_EQUAL(count_type(&x, 0x3B), 1);
	/* the server drops the pile */
	evcs_stub_close(evcs_stub_find(x.stub, "32010600000001"));
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_DISCONNECTED, 1, 2000));
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_LOGIN_OK, 2, 3000));
	CU_ASSERT_TRUE(wait_n(&x, 0x05, 2, 2000));
	CU_ASSERT_EQUAL(x.conns, 2);
	/* power-up order on the new connection: 0x01, the stored record, then 0x05 */
	int order[3] = {0}, k = 0;
	for (int i = 0; i < x.nlog && k < 3; i++)
		if (x.log[i].conn == 2)
			order[k++] = x.log[i].type;
	CU_ASSERT_EQUAL(order[0], 0x01);
	CU_ASSERT_EQUAL(order[1], 0x3B);
	CU_ASSERT_EQUAL(order[2], 0x05);
	/* the pile kept its model: "0101" is the same, no 0x09 this time */
	CU_ASSERT_STRING_EQUAL(last_of(&x, 0x05)->m.u.model.model, "0101");
	CU_ASSERT_EQUAL(count_type(&x, 0x09), 1);
	CU_ASSERT_TRUE(wait_n(&x, 0x03, count_type(&x, 0x03) + 1, 2000));
	fx_free(&x);
}

static void test_wrong_amount_and_energy_target(void)
{
	struct fx x;
	fx_init(&x);
	x.cfg.wrong_amount = true;
	x.cfg.charge_energy = 60000; /* 6 kWh = 10 simulated minutes at 36 kW */
	x.cfg.speed = 600;
	x.cfg.clock_start = T_0750;
	x.cfg.power_w = 36000;
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_FATAL(wait_ev(&x, EVCS_SIM_EV_TARIFF, 1, 5000));
	send_remote_start(&x, "32010600000001", "01", TRADE1);
	CU_ASSERT_FATAL(wait_n(&x, 0x3B, 1, 5000));
	const struct evcs_ykc_record *r = &nth(&x, 0x3B, 0)->m.u.record;
	CU_ASSERT_EQUAL(r->stop_reason, 0x42);
	CU_ASSERT_EQUAL(r->total_kwh, 60000);
	CU_ASSERT_EQUAL(count_type(&x, 0x35), 0);
	uint64_t right = (uint64_t)amount(r->sharp_kwh, r->sharp_price) + amount(r->peak_kwh, r->peak_price) +
			 amount(r->flat_kwh, r->flat_price) + amount(r->valley_kwh, r->valley_price);
	CU_ASSERT(right > 0);
	CU_ASSERT(r->total_amount_yuan != right);
	CU_ASSERT(r->total_amount_yuan < right);
	fx_free(&x);
}

static void test_card_auto_start_by_time(void)
{
	struct fx x;
	fx_init(&x);
	x.cfg.speed = 600;
	x.cfg.clock_start = T_0750;
	x.cfg.auto_start = true;
	x.cfg.charge_minutes = 10;
	x.cfg.idle_s = 3600;
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_FATAL(wait_n(&x, 0x3B, 1, 5000));
	const struct logged *a = nth(&x, 0x31, 0);
	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT_EQUAL(a->m.u.start_request.start_mode, 1);
	const struct evcs_ykc_record *r = &nth(&x, 0x3B, 0)->m.u.record;
	CU_ASSERT_EQUAL(r->trade_flag, 2);
	CU_ASSERT_EQUAL(r->stop_reason, 0x44);
	CU_ASSERT_EQUAL(cp56_ms(&r->end) - cp56_ms(&r->start), 10 * 60000);
	CU_ASSERT(memcmp(r->physical_card, a->m.u.start_request.card, 8) == 0);
	CU_ASSERT_EQUAL(r->total_kwh, 100000); /* 10 minutes at 60 kW */
	/* refused card: no session */
	fx_free(&x);
	fx_init(&x);
	evcs_stub_options(x.stub)->auth_cards = false;
	x.cfg.speed = 600;
	x.cfg.auto_start = true;
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_START_REFUSED, 1, 5000));
	CU_ASSERT_EQUAL(x.ev[EVCS_SIM_EV_SESSION_START], 0);
	fx_free(&x);
}

static void test_commands_realtime_tariff_time_reboot(void)
{
	struct fx x;
	fx_init(&x);
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 2);
	CU_ASSERT_FATAL(wait_ev(&x, EVCS_SIM_EV_TARIFF, 1, 5000));
	int n13 = count_type(&x, 0x13);
	send_pile_gun(&x, 0x12, "32010600000001", "02");
	CU_ASSERT_TRUE(wait_n(&x, 0x13, n13 + 1, 2000));
	CU_ASSERT_STRING_EQUAL(last_of(&x, 0x13)->m.u.realtime.gun, "02");
	CU_ASSERT_EQUAL(last_of(&x, 0x13)->m.u.realtime.status, 2);

	/* tariff push while idle: applied (0x57 result 1) */
	struct evcs_stub_conn *c = evcs_stub_find(x.stub, "32010600000001");
	struct evcs_ykc_msg m = {.type = 0x58};
	m.u.tariff = evcs_stub_options(x.stub)->tariff;
	memcpy(m.u.tariff.pile, "32010600000001", 15);
	memcpy(m.u.tariff.model, "0202", 5);
	CU_ASSERT(evcs_stub_send(c, &m) == 0);
	CU_ASSERT_TRUE(wait_n(&x, 0x57, 1, 2000));
	CU_ASSERT_EQUAL(last_of(&x, 0x57)->m.u.pile_result.result, 1);
	/* while charging: refused (0x57 result 0) */
	send_remote_start(&x, "32010600000001", "01", TRADE1);
	CU_ASSERT_TRUE(wait_n(&x, 0x33, 1, 2000));
	CU_ASSERT(evcs_stub_send(c, &m) == 0);
	CU_ASSERT_TRUE(wait_n(&x, 0x57, 2, 2000));
	CU_ASSERT_EQUAL(last_of(&x, 0x57)->m.u.pile_result.result, 0);

	/* time sync at speed 1: the pile adopts the platform's clock */
	struct evcs_ykc_msg ts = {.type = 0x56};
	memcpy(ts.u.time_sync.pile, "32010600000001", 15);
	struct tm tm = {.tm_year = 125, .tm_mon = 0, .tm_mday = 2, .tm_hour = 3, .tm_min = 4, .tm_sec = 5};
	evcs_ykc_cp56_from_tm(&tm, 0, &ts.u.time_sync.time);
	CU_ASSERT(evcs_stub_send(c, &ts) == 0);
	CU_ASSERT_TRUE(wait_n(&x, 0x55, 1, 2000));
	int64_t got = cp56_ms(&last_of(&x, 0x55)->m.u.time_sync.time);
	CU_ASSERT(llabs(got - cp56_ms(&ts.u.time_sync.time)) < 2000);

	/* reboot now: 0x91 accepted, the running session ends with a record, the
	 * pile drops and logs in again */
	struct evcs_ykc_msg rb = {.type = 0x92};
	memcpy(rb.u.reboot.pile, "32010600000001", 15);
	rb.u.reboot.control = 1;
	CU_ASSERT(evcs_stub_send(c, &rb) == 0);
	CU_ASSERT_TRUE(wait_n(&x, 0x91, 1, 2000));
	CU_ASSERT_FATAL(last_of(&x, 0x91) != NULL);
	CU_ASSERT_EQUAL(last_of(&x, 0x91)->m.u.pile_result.result, 1);
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_LOGIN_OK, 2, 3000));
	CU_ASSERT(count_type(&x, 0x3B) >= 1);
	CU_ASSERT_EQUAL(x.ev[EVCS_SIM_EV_REBOOT], 1);
	fx_free(&x);
}

static void test_lossy_and_slow_link(void)
{
	struct fx x;
	fx_init(&x);
	x.cfg.loss_permille = 1000; /* every frame lost: the server never hears the pile */
	x.cfg.login_retry_ms = 50;
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_CONNECTED, 1, 2000));
	run_for(&x, 300);
	CU_ASSERT_EQUAL(x.nlog, 0);
	struct evcs_sim_stats st;
	evcs_sim_get_stats(x.sim, &st);
	CU_ASSERT(st.frames_lost >= 3); /* the login was retried */
	fx_free(&x);

	fx_init(&x);
	x.cfg.delay_ms = 200;
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_CONNECTED, 1, 2000));
	int64_t t0 = now_us();
	CU_ASSERT_TRUE(wait_n(&x, 0x01, 1, 2000));
	CU_ASSERT(x.log[0].us - t0 >= 190000);
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_TARIFF, 1, 3000));
	fx_free(&x);
}

static void test_random_fault_ends_session(void)
{
	struct fx x;
	fx_init(&x);
	x.cfg.speed = 600;
	x.cfg.fault_permille = 1000;
	x.cfg.charge_minutes = 30;
	fx_start(&x, 1, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_FATAL(wait_ev(&x, EVCS_SIM_EV_TARIFF, 1, 5000));
	send_remote_start(&x, "32010600000001", "01", TRADE1);
	CU_ASSERT_FATAL(wait_n(&x, 0x3B, 1, 5000));
	const struct evcs_ykc_record *r = &nth(&x, 0x3B, 0)->m.u.record;
	CU_ASSERT(r->stop_reason >= 0x6A); /* abnormal stop class (ykc.md §5) */
	CU_ASSERT(cp56_ms(&r->end) - cp56_ms(&r->start) < 30 * 60000);
	/* the gun reports the fault, and a start on it is refused with reason 3 */
	CU_ASSERT_EQUAL(last_of(&x, 0x13)->m.u.realtime.status, 1);
	send_remote_start(&x, "32010600000001", "01", "32010600000001012405010750000009");
	CU_ASSERT_TRUE(wait_n(&x, 0x33, 2, 2000));
	CU_ASSERT_EQUAL(last_of(&x, 0x33)->m.u.remote_start_reply.fail_reason, 3);
	fx_free(&x);
}

static void test_source_address_and_parse(void)
{
	uint32_t a, b;
	CU_ASSERT_EQUAL(evcs_sim_parse_addr_range("127.0.0.2-127.0.0.20", &a, &b), 0);
	CU_ASSERT_EQUAL(a, 0x7F000002u);
	CU_ASSERT_EQUAL(b, 0x7F000014u);
	CU_ASSERT_EQUAL(evcs_sim_parse_addr_range("127.0.0.5", &a, &b), 0);
	CU_ASSERT_EQUAL(a, b);
	CU_ASSERT_EQUAL(evcs_sim_parse_addr_range("127.0.0.9-127.0.0.2", &a, &b), -EINVAL);
	CU_ASSERT_EQUAL(evcs_sim_parse_addr_range("nonsense", &a, &b), -EINVAL);
	/* three piles, one per source address (per_src 1), all log in */
	struct fx x;
	fx_init(&x);
	evcs_sim_parse_addr_range("127.0.0.2-127.0.0.4", &x.cfg.src_first, &x.cfg.src_last);
	x.cfg.per_src = 1;
	fx_start(&x, 3, EVCS_YKC_PROTO_16, 1);
	CU_ASSERT_TRUE(wait_ev(&x, EVCS_SIM_EV_TARIFF, 3, 5000));
	fx_free(&x);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("sim", NULL, NULL);
	EVCS_ADD(s, test_login_and_billing_model);
	EVCS_ADD(s, test_login_v15_and_refused);
	EVCS_ADD(s, test_heartbeat_per_gun_with_speed);
	EVCS_ADD(s, test_remote_start_stop_record_follows_tariff);
	EVCS_ADD(s, test_record_resent_until_acknowledged);
	EVCS_ADD(s, test_reconnect_and_resend_after_drop);
	EVCS_ADD(s, test_wrong_amount_and_energy_target);
	EVCS_ADD(s, test_card_auto_start_by_time);
	EVCS_ADD(s, test_commands_realtime_tariff_time_reboot);
	EVCS_ADD(s, test_lossy_and_slow_link);
	EVCS_ADD(s, test_random_fault_ends_session);
	EVCS_ADD(s, test_source_address_and_parse);
}

EVCS_TEST_MAIN(register_tests)
