/*
 * plugins/ykc/sim_core.c: the YKC charger simulator (contract in sim.h).
 *
 * Each pile is a small state machine: OFF -> CONNECTING -> LOGIN (0x01 sent)
 * -> MODEL (0x05/0x09 until a billing model is known) -> READY. All of a pile's
 * deadlines (reconnect, login retry, heartbeat, per-gun real-time data, session
 * end, record resend, delayed frames) are kept as absolute real-time ms and the
 * pile's single timer is armed for the earliest one, so a pile costs one event
 * and one bufferevent however many timers the protocol asks for.
 *
 * Energy follows a constant power per gun: E(t) = power_w * (t - start) / 360000
 * in 0.0001 kWh with t in ms. Per-period energy is the difference of E across
 * each half-hour slot of the pile's wall clock, so the periods always add up to
 * the total exactly and follow the tariff slots the pile was given.
 */
#include "sim.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NEVER INT64_MAX
#define RECORD_BODY 158
#define RTT_BUCKETS 640

enum pile_state { PS_OFF = 0, PS_CONNECTING, PS_LOGIN, PS_MODEL, PS_READY };
enum gun_state { GS_IDLE = 0, GS_STARTING, GS_CHARGING, GS_FAULT };

struct sim_record {
	char trade_no[33];
	uint8_t body[RECORD_BODY];
};

struct sim_gun {
	uint8_t state, trade_flag, resends, stop_reason;
	uint16_t hw_fault;
	char trade_no[33];
	uint8_t card[8];
	int64_t start_sim, last_sim, plan_sim, fault_sim; /* pile clock, ms */
	int64_t next_report, next_resend, idle_until;     /* real ms */
	int64_t hb_sent_us;                               /* real µs; 0 = none pending */
	int64_t energy, period[4];
	uint64_t meter;
	struct sim_record *record; /* unacknowledged 0x3B, or NULL */
};

struct sim_delayed {
	struct sim_delayed *next;
	int64_t due;
	uint16_t n;
	uint8_t b[];
};

struct sim_pile {
	evcs_sim_t *sim;
	struct bufferevent *bev;
	struct event *tmr;
	struct sim_delayed *dq_head, *dq_tail;
	unsigned idx;
	char serial[15];
	uint8_t proto, nguns, state;
	bool started, have_tariff, asked_model, echo, reboot_when_idle, refused_logged;
	bool draining; /* rebooting: waiting for the output to drain before closing */
	uint16_t seq;
	unsigned inflight;
	int64_t retry_at, next_hb, last_hb_ack; /* real ms */
	int64_t clock_adj;                      /* pile clock - simulated clock, ms */
	struct evcs_ykc_tariff tariff;
	struct sim_gun guns[];
};

struct evcs_sim {
	struct event_base *base;
	struct evcs_sim_config cfg;
	char *host;
	struct sockaddr_in dst;
	uint16_t port15;
	int64_t t0_us;     /* monotonic at creation */
	int64_t sim0_ms;   /* simulated clock at creation */
	uint64_t rng;
	struct sim_pile **piles;
	unsigned npiles, cap, next_start;
	struct event *ramp;
	struct evcs_sim_stats st;
	uint64_t rtt_hist[RTT_BUCKETS];
	uint32_t rtt_max;
};

/* ------------------------------------------------------------------------ */

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_ms(const evcs_sim_t *sim) { return (mono_us() - sim->t0_us) / 1000; }

int64_t evcs_sim_now_ms(const evcs_sim_t *sim)
{
	return sim->sim0_ms + (mono_us() - sim->t0_us) / 1000 * (int64_t)sim->cfg.speed;
}

static int64_t pile_clock(const struct sim_pile *p) { return evcs_sim_now_ms(p->sim) + p->clock_adj; }

/* Real ms at which the pile's clock reads t (rounded up so the deadline has passed). */
static int64_t pile_to_real(const struct sim_pile *p, int64_t t)
{
	if (t == NEVER)
		return NEVER;
	int64_t d = t - p->clock_adj - p->sim->sim0_ms;
	int64_t s = p->sim->cfg.speed;
	return d <= 0 ? 0 : (d + s - 1) / s;
}

/* A simulated duration in seconds as real ms. */
static int64_t sim_s_real(const evcs_sim_t *sim, unsigned s)
{
	int64_t ms = (int64_t)s * 1000 / sim->cfg.speed;
	return ms > 0 ? ms : 1;
}

static uint64_t rnd(evcs_sim_t *sim)
{
	/* xorshift64*: cheap, seeded, reproducible runs */
	uint64_t x = sim->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sim->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static bool chance(evcs_sim_t *sim, unsigned permille)
{
	return permille && rnd(sim) % 1000 < permille;
}

static void slog(evcs_sim_t *sim, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slog(evcs_sim_t *sim, int level, const char *fmt, ...)
{
	if (!sim->cfg.log || level > sim->cfg.log_level)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sim->cfg.log(sim->cfg.arg, level, buf);
}

static void emit(struct sim_pile *p, enum evcs_sim_event_type type, unsigned gun, const char *trade,
		 int64_t energy, uint32_t amount, const struct evcs_ykc_record *rec)
{
	evcs_sim_t *sim = p->sim;
	if (!sim->cfg.on_event)
		return;
	struct evcs_sim_event ev = {.type = type, .pile = p->serial, .gun = gun, .trade_no = trade,
				    .energy = energy, .amount = amount, .record = rec};
	sim->cfg.on_event(sim->cfg.arg, &ev);
}

static unsigned rtt_bucket(uint64_t v)
{
	if (v < 16)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned b = (e - 3) * 16 + (unsigned)((v >> (e - 4)) & 15);
	return b < RTT_BUCKETS ? b : RTT_BUCKETS - 1;
}

static uint64_t rtt_value(unsigned b)
{
	if (b < 16)
		return b;
	unsigned e = b / 16 + 3, sub = b % 16;
	/* midpoint of the bucket */
	return ((uint64_t)(16 + sub) << (e - 4)) + ((uint64_t)1 << (e - 4)) / 2;
}

static void rtt_add(evcs_sim_t *sim, int64_t us)
{
	if (us < 0)
		us = 0;
	sim->rtt_hist[rtt_bucket((uint64_t)us)]++;
	sim->st.rtt_n++;
	if ((uint64_t)us > sim->rtt_max)
		sim->rtt_max = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* ------------------------------------------------------------------------ */
/* Sending.                                                                  */

static void write_raw(struct sim_pile *p, const uint8_t *b, size_t n)
{
	if (!p->bev)
		return;
	bufferevent_write(p->bev, b, n);
	p->sim->st.frames_tx++;
	p->sim->st.bytes_tx += n;
}

static void schedule(struct sim_pile *p);

static void send_frame(struct sim_pile *p, const uint8_t *frame, size_t n)
{
	evcs_sim_t *sim = p->sim;
	if (chance(sim, sim->cfg.loss_permille)) {
		sim->st.frames_lost++;
		return;
	}
	if (!sim->cfg.delay_ms) {
		write_raw(p, frame, n);
		return;
	}
	struct sim_delayed *d = malloc(sizeof(*d) + n);
	if (!d) {
		slog(sim, EVCS_SIM_LOG_ERR, "pile %s: out of memory delaying a frame", p->serial);
		return;
	}
	d->next = NULL;
	d->due = real_ms(sim) + sim->cfg.delay_ms;
	d->n = (uint16_t)n;
	memcpy(d->b, frame, n);
	if (p->dq_tail)
		p->dq_tail->next = d;
	else
		p->dq_head = d;
	p->dq_tail = d;
	schedule(p);
}

/* seq NULL: the pile's own counter (pile-originated); else echo the request's bytes. */
static void send_msg(struct sim_pile *p, const struct evcs_ykc_msg *m, const uint8_t *seq)
{
	uint8_t out[EVCS_YKC_MAX_FRAME], sq[2];
	if (!seq) {
		evcs_ykc_seq_from_counter(p->seq++, sq);
		seq = sq;
	}
	const char *bad = NULL;
	int n = evcs_ykc_encode_frame(m, seq, EVCS_YKC_CRC_LE, out, sizeof(out), &bad);
	if (n < 0) {
		slog(p->sim, EVCS_SIM_LOG_ERR, "pile %s: cannot encode 0x%02X (%s): %s", p->serial, m->type,
		     bad ? bad : "?", strerror(-n));
		return;
	}
	send_frame(p, out, (size_t)n);
}

static void free_delayed(struct sim_pile *p)
{
	while (p->dq_head) {
		struct sim_delayed *d = p->dq_head;
		p->dq_head = d->next;
		free(d);
	}
	p->dq_tail = NULL;
}

static void gun_str(unsigned g, char out[3]) { snprintf(out, 3, "%02u", g % 100); }

static void send_login(struct sim_pile *p)
{
	struct evcs_ykc_msg m = {.type = 0x01};
	struct evcs_ykc_login *l = &m.u.login;
	memcpy(l->pile, p->serial, 15);
	l->pile_type = 0;
	l->gun_count = p->nguns;
	l->protocol_version = p->proto;
	snprintf(l->program_version, sizeof(l->program_version), "SIM%u.%u", p->proto / 10, p->proto % 10);
	l->network = 1;
	snprintf(l->sim, sizeof(l->sim), "898600%014u", p->idx);
	l->carrier = 4;
	send_msg(p, &m, NULL);
}

static void send_model_check(struct sim_pile *p)
{
	struct evcs_ykc_msg m = {.type = p->asked_model ? 0x09 : 0x05};
	memcpy(m.u.model.pile, p->serial, 15);
	memcpy(m.u.model.model, p->have_tariff ? p->tariff.model : "0000", 5);
	send_msg(p, &m, NULL);
}

static void send_heartbeat(struct sim_pile *p, unsigned g)
{
	struct evcs_ykc_msg m = {.type = 0x03};
	memcpy(m.u.heartbeat.pile, p->serial, 15);
	gun_str(g + 1, m.u.heartbeat.gun);
	m.u.heartbeat.gun_state = p->guns[g].state == GS_FAULT ? 1 : 0;
	p->guns[g].hb_sent_us = mono_us();
	p->sim->st.hb_sent++;
	send_msg(p, &m, NULL);
}

static void send_pile_result(struct sim_pile *p, uint8_t type, uint8_t result, const uint8_t *seq)
{
	struct evcs_ykc_msg m = {.type = type};
	memcpy(m.u.pile_result.pile, p->serial, 15);
	m.u.pile_result.result = result;
	send_msg(p, &m, seq);
}

/* ------------------------------------------------------------------------ */
/* Energy and money.                                                         */

static int64_t energy_at(const struct sim_pile *p, const struct sim_gun *g, int64_t t)
{
	return (int64_t)p->sim->cfg.power_w * (t - g->start_sim) / 360000;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int slot_period(const struct sim_pile *p, int64_t local_ms)
{
	int64_t day = local_ms - floor_div(local_ms, 86400000) * 86400000;
	uint8_t v = p->tariff.slots[day / 1800000];
	return v <= 3 ? v : 2; /* an out-of-range slot byte is billed as flat */
}

/* Attribute the energy between g->last_sim and t to the tariff periods. */
static void advance(struct sim_pile *p, struct sim_gun *g, int64_t t)
{
	int64_t tz = (int64_t)p->sim->cfg.tz_offset_min * 60000;
	int64_t a = g->last_sim;
	while (a < t) {
		int64_t local = a + tz;
		int64_t boundary = (floor_div(local, 1800000) + 1) * 1800000 - tz;
		int64_t b = boundary < t ? boundary : t;
		g->period[slot_period(p, local)] += energy_at(p, g, b) - energy_at(p, g, a);
		a = b;
	}
	if (t > g->last_sim)
		g->last_sim = t;
	g->energy = energy_at(p, g, g->last_sim);
}

static uint32_t period_price(const struct evcs_ykc_tariff *t, int k)
{
	switch (k) {
	case 0: return t->sharp_elec_rate + t->sharp_service_rate;
	case 1: return t->peak_elec_rate + t->peak_service_rate;
	case 2: return t->flat_elec_rate + t->flat_service_rate;
	default: return t->valley_elec_rate + t->valley_service_rate;
	}
}

/* kwh (0.0001 kWh) x price (0.00001 yuan/kWh) -> wire amount (0.0001 yuan), rounded
 * half up; split so the product cannot overflow. The wrong-amount pile bills 10 % low,
 * like the JCPP capture in ykc.md §1.5. */
static uint32_t amount_of(const evcs_sim_t *sim, int64_t kwh, uint32_t price)
{
	uint64_t k = (uint64_t)kwh;
	uint64_t a = (k / 100000) * price + ((k % 100000) * price + 50000) / 100000;
	if (sim->cfg.wrong_amount)
		a = a * 9 / 10;
	return a > UINT32_MAX ? UINT32_MAX : (uint32_t)a;
}

static uint32_t running_amount(const struct sim_pile *p, const struct sim_gun *g)
{
	uint64_t sum = 0;
	for (int k = 0; k < 4; k++)
		sum += amount_of(p->sim, g->period[k], period_price(&p->tariff, k));
	return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

static void local_tm(const struct sim_pile *p, int64_t ms, struct tm *tm, unsigned *msec)
{
	int64_t l = ms + (int64_t)p->sim->cfg.tz_offset_min * 60000;
	time_t s = (time_t)floor_div(l, 1000);
	gmtime_r(&s, tm);
	*msec = (unsigned)(l - (int64_t)s * 1000);
}

static void cp56_at(const struct sim_pile *p, int64_t ms, struct evcs_ykc_cp56 *c)
{
	struct tm tm;
	unsigned msec;
	local_tm(p, ms, &tm, &msec);
	if (evcs_ykc_cp56_from_tm(&tm, msec, c) < 0)
		memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------------ */
/* Real-time data and sessions.                                              */

static void send_realtime(struct sim_pile *p, unsigned gi)
{
	struct sim_gun *g = &p->guns[gi];
	struct evcs_ykc_msg m = {.type = 0x13};
	struct evcs_ykc_realtime *r = &m.u.realtime;
	bool charging = g->state == GS_CHARGING;
	if (charging)
		memcpy(r->trade_no, g->trade_no, 33);
	else
		memset(r->trade_no, '0', 32);
	memcpy(r->pile, p->serial, 15);
	gun_str(gi + 1, r->gun);
	r->status = g->state == GS_FAULT ? 1 : charging ? 3 : 2;
	r->gun_returned = charging ? 0 : 1;
	r->plugged = charging ? 1 : 0;
	r->gun_temp_c = charging ? 35 : 25;
	r->batt_max_temp_c = charging ? 32 : 0;
	r->hw_fault = g->hw_fault;
	if (charging) {
		int64_t now = pile_clock(p);
		advance(p, g, now);
		r->voltage_v = 7500; /* 750.0 V */
		r->current_a = (uint16_t)((uint64_t)p->sim->cfg.power_w * 10 / 750 > 65535
						  ? 65535 : (uint64_t)p->sim->cfg.power_w * 10 / 750);
		int64_t soc = 20 + g->energy / 6000; /* a 60 kWh battery from 20 % */
		r->soc = (uint8_t)(soc > 100 ? 100 : soc);
		r->charged_min = (uint16_t)((now - g->start_sim) / 60000);
		int64_t end = g->plan_sim;
		r->remaining_min = end == NEVER ? 0 : (uint16_t)((end - now) / 60000);
		r->kwh = g->energy > UINT32_MAX ? UINT32_MAX : (uint32_t)g->energy;
		r->loss_kwh = r->kwh;
		r->amount_yuan = running_amount(p, g);
		emit(p, EVCS_SIM_EV_SAMPLE, gi + 1, g->trade_no, g->energy, r->amount_yuan, NULL);
	}
	send_msg(p, &m, NULL);
}

static void start_session(struct sim_pile *p, unsigned gi, const char *trade, uint8_t flag,
			  const uint8_t card[8])
{
	evcs_sim_t *sim = p->sim;
	struct sim_gun *g = &p->guns[gi];
	int64_t now = pile_clock(p), rt = real_ms(sim);
	g->state = GS_CHARGING;
	memcpy(g->trade_no, trade, 33);
	g->trade_flag = flag;
	if (card)
		memcpy(g->card, card, 8);
	else
		memset(g->card, 0, 8);
	g->start_sim = g->last_sim = now;
	g->energy = 0;
	memset(g->period, 0, sizeof(g->period));
	g->hw_fault = 0;
	g->plan_sim = sim->cfg.charge_minutes ? now + (int64_t)sim->cfg.charge_minutes * 60000 : NEVER;
	g->stop_reason = 0x44; /* time target */
	if (sim->cfg.charge_energy > 0 && sim->cfg.power_w) {
		/* first ms at which E(t) >= target */
		int64_t te = now + (sim->cfg.charge_energy * 360000 + sim->cfg.power_w - 1) / sim->cfg.power_w;
		if (te < g->plan_sim) {
			g->plan_sim = te;
			g->stop_reason = 0x42;
		}
	}
	g->fault_sim = NEVER;
	if (chance(sim, sim->cfg.fault_permille)) {
		int64_t span = g->plan_sim == NEVER ? 3600000 : g->plan_sim - now;
		g->fault_sim = now + 1 + (int64_t)(rnd(sim) % (uint64_t)(span > 1 ? span - 1 : 1));
	}
	g->next_report = rt; /* status change: report at once */
	sim->st.sessions_started++;
	sim->st.charging++;
	emit(p, EVCS_SIM_EV_SESSION_START, gi + 1, g->trade_no, 0, 0, NULL);
	slog(sim, EVCS_SIM_LOG_INFO, "pile %s gun %u: charging, trade %s", p->serial, gi + 1, g->trade_no);
	send_realtime(p, gi);
	g->next_report = rt + sim_s_real(sim, sim->cfg.report_s);
	schedule(p);
}

static void send_record(struct sim_pile *p, struct sim_gun *g)
{
	uint8_t out[EVCS_YKC_MAX_FRAME], sq[2];
	evcs_ykc_seq_from_counter(p->seq++, sq);
	int n = evcs_ykc_frame_build(out, sizeof(out), sq, 0, 0x3B, g->record->body, RECORD_BODY,
				     EVCS_YKC_CRC_LE);
	if (n > 0)
		send_frame(p, out, (size_t)n);
}

static void end_session(struct sim_pile *p, unsigned gi, int64_t t_end, uint8_t reason)
{
	evcs_sim_t *sim = p->sim;
	struct sim_gun *g = &p->guns[gi];
	advance(p, g, t_end);
	struct evcs_ykc_msg m = {.type = 0x3B};
	struct evcs_ykc_record *r = &m.u.record;
	memcpy(r->trade_no, g->trade_no, 33);
	memcpy(r->pile, p->serial, 15);
	gun_str(gi + 1, r->gun);
	cp56_at(p, g->start_sim, &r->start);
	cp56_at(p, t_end, &r->end);
	uint32_t *price[4] = {&r->sharp_price, &r->peak_price, &r->flat_price, &r->valley_price};
	uint32_t *kwh[4] = {&r->sharp_kwh, &r->peak_kwh, &r->flat_kwh, &r->valley_kwh};
	uint32_t *loss[4] = {&r->sharp_loss_kwh, &r->peak_loss_kwh, &r->flat_loss_kwh, &r->valley_loss_kwh};
	uint32_t *amt[4] = {&r->sharp_amount, &r->peak_amount, &r->flat_amount, &r->valley_amount};
	uint64_t total_amt = 0;
	for (int k = 0; k < 4; k++) {
		*price[k] = period_price(&p->tariff, k);
		*kwh[k] = *loss[k] = (uint32_t)g->period[k];
		*amt[k] = amount_of(sim, g->period[k], *price[k]);
		total_amt += *amt[k];
	}
	r->meter_start_kwh = g->meter & 0xFFFFFFFFFFull;
	g->meter += (uint64_t)g->energy;
	r->meter_stop_kwh = g->meter & 0xFFFFFFFFFFull;
	r->total_kwh = r->total_loss_kwh = (uint32_t)g->energy;
	r->total_amount_yuan = total_amt > UINT32_MAX ? UINT32_MAX : (uint32_t)total_amt;
	r->trade_flag = g->trade_flag;
	r->trade_time = r->end;
	r->stop_reason = reason;
	memcpy(r->physical_card, g->card, 8);

	if (g->record) {
		slog(sim, EVCS_SIM_LOG_WARN, "pile %s gun %u: record %s never acknowledged, replaced",
		     p->serial, gi + 1, g->record->trade_no);
		free(g->record);
	}
	g->record = malloc(sizeof(*g->record));
	const char *bad = NULL;
	if (g->record && evcs_ykc_encode_body(&m, g->record->body, RECORD_BODY, &bad) == RECORD_BODY) {
		memcpy(g->record->trade_no, g->trade_no, 33);
		g->resends = 0;
		g->next_resend = real_ms(sim) + sim_s_real(sim, sim->cfg.resend_s);
		if (p->state >= PS_MODEL)
			send_record(p, g);
	} else {
		slog(sim, EVCS_SIM_LOG_ERR, "pile %s gun %u: cannot build record (%s)", p->serial, gi + 1,
		     bad ? bad : "no memory");
		free(g->record);
		g->record = NULL;
	}
	bool fault = reason >= 0x6A;
	g->state = fault ? GS_FAULT : GS_IDLE;
	g->idle_until = real_ms(sim) + sim_s_real(sim, fault ? sim->cfg.fault_recover_s : sim->cfg.idle_s);
	sim->st.sessions_ended++;
	sim->st.charging--;
	if (fault)
		sim->st.faults++;
	slog(sim, EVCS_SIM_LOG_INFO, "pile %s gun %u: session %s ended (reason 0x%02X), %u.%04u kWh, %u.%04u yuan",
	     p->serial, gi + 1, g->trade_no, reason, r->total_kwh / 10000, r->total_kwh % 10000,
	     r->total_amount_yuan / 10000, r->total_amount_yuan % 10000);
	emit(p, EVCS_SIM_EV_SESSION_END, gi + 1, g->trade_no, g->energy, r->total_amount_yuan, r);
	if (p->state >= PS_MODEL)
		send_realtime(p, gi);
	g->hw_fault = fault ? 0x0040 : 0;
	g->next_report = real_ms(sim) + sim_s_real(sim, sim->cfg.idle_report_s);
}

static void send_card_start(struct sim_pile *p, unsigned gi)
{
	struct sim_gun *g = &p->guns[gi];
	struct evcs_ykc_msg m = {.type = 0x31};
	struct evcs_ykc_start_request *s = &m.u.start_request;
	memcpy(s->pile, p->serial, 15);
	gun_str(gi + 1, s->gun);
	s->start_mode = 1;
	/* a card per gun, stable across runs: 0xC0 + pile index + gun */
	s->card[0] = 0xC0;
	s->card[3] = (uint8_t)(p->idx >> 24);
	s->card[4] = (uint8_t)(p->idx >> 16);
	s->card[5] = (uint8_t)(p->idx >> 8);
	s->card[6] = (uint8_t)p->idx;
	s->card[7] = (uint8_t)(gi + 1);
	memcpy(g->card, s->card, 8);
	g->state = GS_STARTING;
	g->idle_until = real_ms(p->sim) + (int64_t)p->sim->cfg.login_retry_ms * 6;
	send_msg(p, &m, NULL);
}

/* ------------------------------------------------------------------------ */
/* Connection life cycle.                                                    */

static void pile_drop(struct sim_pile *p, unsigned delay_ms, const char *why)
{
	evcs_sim_t *sim = p->sim;
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
		if (p->state >= PS_LOGIN)
			sim->st.connected--;
		if (p->state == PS_READY)
			sim->st.ready--;
		sim->st.disconnects++;
		slog(sim, EVCS_SIM_LOG_INFO, "pile %s: disconnected (%s), reconnect in %u ms", p->serial, why,
		     delay_ms);
		emit(p, EVCS_SIM_EV_DISCONNECTED, 0, NULL, 0, 0, NULL);
	}
	free_delayed(p);
	p->state = PS_OFF;
	p->draining = false;
	p->inflight = 0;
	p->echo = false;
	for (unsigned i = 0; i < p->nguns; i++) {
		p->guns[i].hb_sent_us = 0;
		if (p->guns[i].state == GS_STARTING)
			p->guns[i].state = GS_IDLE;
	}
	/* jitter so a server restart does not get every pile back in the same ms */
	p->retry_at = real_ms(sim) + delay_ms + (int64_t)(rnd(sim) % (delay_ms / 4 + 1));
	schedule(p);
}

static void go_ready(struct sim_pile *p)
{
	evcs_sim_t *sim = p->sim;
	int64_t now = real_ms(sim);
	p->state = PS_READY;
	sim->st.ready++;
	p->last_hb_ack = now;
	if (sim->cfg.flood) {
		for (unsigned i = 0; i < sim->cfg.flood; i++)
			send_heartbeat(p, i % p->nguns);
		p->inflight = sim->cfg.flood;
	} else {
		/* spread the first heartbeat over one period so N piles do not beat in step */
		int64_t per = sim_s_real(sim, sim->cfg.heartbeat_s);
		p->next_hb = now + (int64_t)(rnd(sim) % (uint64_t)per);
	}
	if (!p->echo)
		for (unsigned i = 0; i < p->nguns; i++) {
			struct sim_gun *g = &p->guns[i];
			if (g->state != GS_CHARGING) {
				send_realtime(p, i);
				g->next_report = now + sim_s_real(sim, sim->cfg.idle_report_s);
			}
			if (g->state == GS_IDLE && sim->cfg.auto_start && g->idle_until < now)
				g->idle_until = now + (int64_t)(rnd(sim) % 1000);
		}
	schedule(p);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_bev_event(struct bufferevent *bev, short what, void *arg);

static unsigned addr_index(const evcs_sim_t *sim, unsigned idx)
{
	uint32_t span = sim->cfg.src_last - sim->cfg.src_first + 1;
	return (unsigned)((idx / sim->cfg.per_src) % span);
}

static void pile_connect(struct sim_pile *p)
{
	evcs_sim_t *sim = p->sim;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		slog(sim, EVCS_SIM_LOG_ERR, "pile %s: socket: %s", p->serial, strerror(errno));
		sim->st.connect_failures++;
		pile_drop(p, sim->cfg.reconnect_ms, "socket failed");
		return;
	}
	/* a pile writes each frame as its own segment; without this, Nagle plus the
	 * peer's delayed ACK adds 40 ms to the second of two back-to-back frames */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sim->cfg.src_first) {
		/* defer the port choice to connect() so one source address serves many
		 * destinations and the ephemeral range is per 4-tuple */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		struct sockaddr_in src = {.sin_family = AF_INET};
		src.sin_addr.s_addr = htonl(sim->cfg.src_first + addr_index(sim, p->idx));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			slog(sim, EVCS_SIM_LOG_ERR, "pile %s: bind source: %s", p->serial, strerror(errno));
			close(fd);
			sim->st.connect_failures++;
			pile_drop(p, sim->cfg.reconnect_ms, "bind failed");
			return;
		}
	}
	p->bev = bufferevent_socket_new(sim->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!p->bev) {
		close(fd);
		sim->st.connect_failures++;
		pile_drop(p, sim->cfg.reconnect_ms, "no memory");
		return;
	}
	bufferevent_setcb(p->bev, on_read, NULL, on_bev_event, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	struct sockaddr_in dst = sim->dst;
	if (p->proto == EVCS_YKC_PROTO_15 && sim->port15)
		dst.sin_port = htons(sim->port15);
	p->state = PS_CONNECTING;
	if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		bufferevent_free(p->bev);
		p->bev = NULL;
		sim->st.connect_failures++;
		pile_drop(p, sim->cfg.reconnect_ms, "connect failed");
		return;
	}
	p->retry_at = real_ms(sim) + 10000; /* connect timeout */
	schedule(p);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
	struct sim_pile *p = arg;
	evcs_sim_t *sim = p->sim;
	if (what & BEV_EVENT_CONNECTED) {
		p->state = PS_LOGIN;
		sim->st.connects++;
		sim->st.connected++;
		p->seq = 0;
		p->asked_model = false;
		send_login(p);
		p->retry_at = real_ms(sim) + sim->cfg.login_retry_ms;
		emit(p, EVCS_SIM_EV_CONNECTED, 0, NULL, 0, 0, NULL);
		schedule(p);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (p->state == PS_CONNECTING)
			sim->st.connect_failures++;
		int err = EVUTIL_SOCKET_ERROR();
		pile_drop(p, sim->cfg.reconnect_ms,
			  (what & BEV_EVENT_EOF) ? "closed by server" : evutil_socket_error_to_string(err));
	}
}

/* ------------------------------------------------------------------------ */
/* Frames from the server.                                                   */

static int gun_index(const struct sim_pile *p, const char *gun)
{
	int g = (gun[0] - '0') * 10 + (gun[1] - '0');
	return (g >= 1 && g <= p->nguns) ? g - 1 : -1;
}

static void got_tariff(struct sim_pile *p, const struct evcs_ykc_tariff *t)
{
	p->tariff = *t;
	memcpy(p->tariff.pile, p->serial, 15);
	p->have_tariff = true;
	slog(p->sim, EVCS_SIM_LOG_INFO, "pile %s: billing model %s", p->serial, t->model);
	emit(p, EVCS_SIM_EV_TARIFF, 0, NULL, 0, 0, NULL);
}

static void got_heartbeat_ack(struct sim_pile *p, const char *gun)
{
	evcs_sim_t *sim = p->sim;
	int gi = gun_index(p, gun);
	if (gi >= 0 && p->guns[gi].hb_sent_us) {
		rtt_add(sim, mono_us() - p->guns[gi].hb_sent_us);
		p->guns[gi].hb_sent_us = 0;
	}
	sim->st.hb_acked++;
	p->last_hb_ack = real_ms(sim);
	if (sim->cfg.flood && p->state == PS_READY)
		send_heartbeat(p, gi >= 0 ? (unsigned)gi : 0);
}

static void remote_start(struct sim_pile *p, const struct evcs_ykc_remote_start *rs, const uint8_t *seq)
{
	struct evcs_ykc_msg m = {.type = 0x33};
	struct evcs_ykc_remote_start_reply *r = &m.u.remote_start_reply;
	memcpy(r->trade_no, rs->trade_no, 33);
	memcpy(r->pile, p->serial, 15);
	memcpy(r->gun, rs->gun, 3);
	int gi = gun_index(p, rs->gun);
	if (strcmp(rs->pile, p->serial) != 0 || gi < 0)
		r->fail_reason = 1;
	else if (p->guns[gi].state == GS_CHARGING || p->guns[gi].state == GS_STARTING)
		r->fail_reason = 2;
	else if (p->guns[gi].state == GS_FAULT || !p->have_tariff)
		r->fail_reason = 3; /* no billing model: must not charge (SPEC §6.7) */
	else
		r->result = 1;
	send_msg(p, &m, seq);
	if (r->result)
		start_session(p, (unsigned)gi, rs->trade_no, 1, rs->physical_card);
	else {
		slog(p->sim, EVCS_SIM_LOG_INFO, "pile %s gun %s: remote start refused (reason %u)", p->serial,
		     rs->gun, r->fail_reason);
		emit(p, EVCS_SIM_EV_START_REFUSED, gi >= 0 ? (unsigned)gi + 1 : 0, rs->trade_no, 0, 0, NULL);
	}
}

static void remote_stop(struct sim_pile *p, const struct evcs_ykc_pile_gun *pg, const uint8_t *seq)
{
	struct evcs_ykc_msg m = {.type = 0x35};
	struct evcs_ykc_remote_stop_reply *r = &m.u.remote_stop_reply;
	memcpy(r->pile, p->serial, 15);
	memcpy(r->gun, pg->gun, 3);
	int gi = gun_index(p, pg->gun);
	if (strcmp(pg->pile, p->serial) != 0 || gi < 0)
		r->fail_reason = 1;
	else if (p->guns[gi].state != GS_CHARGING)
		r->fail_reason = 2;
	else
		r->result = 1;
	send_msg(p, &m, seq);
	if (r->result)
		end_session(p, (unsigned)gi, pile_clock(p), 0x40);
}

static void start_auth(struct sim_pile *p, const struct evcs_ykc_start_auth *a)
{
	int gi = gun_index(p, a->gun);
	if (gi < 0 || p->guns[gi].state != GS_STARTING)
		return;
	struct sim_gun *g = &p->guns[gi];
	if (a->auth_ok == 1 && p->have_tariff) {
		uint8_t card[8];
		memcpy(card, g->card, 8);
		start_session(p, (unsigned)gi, a->trade_no, 2, card);
	} else {
		g->state = GS_IDLE;
		g->idle_until = real_ms(p->sim) + sim_s_real(p->sim, p->sim->cfg.idle_s);
		slog(p->sim, EVCS_SIM_LOG_INFO, "pile %s gun %u: card start refused (reason %u)", p->serial,
		     gi + 1, a->fail_reason);
		emit(p, EVCS_SIM_EV_START_REFUSED, (unsigned)gi + 1, a->trade_no, 0, 0, NULL);
	}
}

static void record_ack(struct sim_pile *p, const struct evcs_ykc_record_ack *a)
{
	for (unsigned i = 0; i < p->nguns; i++) {
		struct sim_gun *g = &p->guns[i];
		if (g->record && strcmp(g->record->trade_no, a->trade_no) == 0) {
			if (a->result != 0)
				slog(p->sim, EVCS_SIM_LOG_WARN, "pile %s: record %s acknowledged as illegal (result %u)",
				     p->serial, a->trade_no, a->result);
			free(g->record);
			g->record = NULL;
			p->sim->st.records_acked++;
			emit(p, EVCS_SIM_EV_RECORD_ACKED, i + 1, a->trade_no, 0, 0, NULL);
			return;
		}
	}
}

static void time_sync(struct sim_pile *p, const struct evcs_ykc_time_sync *ts, const uint8_t *seq)
{
	/* With a sped-up clock the simulated clock is the reference (the server's
	 * real time would move the pile backwards); at speed 1 the pile obeys. */
	if (p->sim->cfg.speed == 1) {
		struct tm tm;
		unsigned ms;
		evcs_ykc_cp56_to_tm(&ts->time, &tm, &ms);
		time_t t = timegm(&tm);
		if (t != (time_t)-1) {
			int64_t want = (int64_t)t * 1000 + ms - (int64_t)p->sim->cfg.tz_offset_min * 60000;
			p->clock_adj = want - evcs_sim_now_ms(p->sim);
		}
	}
	struct evcs_ykc_msg m = {.type = 0x55};
	memcpy(m.u.time_sync.pile, p->serial, 15);
	cp56_at(p, pile_clock(p), &m.u.time_sync.time);
	send_msg(p, &m, seq);
}

static bool any_charging(const struct sim_pile *p)
{
	for (unsigned i = 0; i < p->nguns; i++)
		if (p->guns[i].state == GS_CHARGING)
			return true;
	return false;
}

static void on_drained(struct bufferevent *bev, void *arg)
{
	struct sim_pile *p = arg;
	pile_drop(p, p->sim->cfg.reconnect_ms, "reboot");
}

static void reboot_now(struct sim_pile *p)
{
	for (unsigned i = 0; i < p->nguns; i++)
		if (p->guns[i].state == GS_CHARGING)
			end_session(p, i, pile_clock(p), 0x6A);
	p->reboot_when_idle = false;
	emit(p, EVCS_SIM_EV_REBOOT, 0, NULL, 0, 0, NULL);
	/* the frames above are still queued and a socket bufferevent discards unsent
	 * output when freed: stop reading and drop once the output has drained */
	if (p->bev && evbuffer_get_length(bufferevent_get_output(p->bev)) > 0) {
		p->draining = true;
		bufferevent_disable(p->bev, EV_READ);
		bufferevent_setcb(p->bev, NULL, on_drained, on_bev_event, p);
		evtimer_del(p->tmr);
		return;
	}
	pile_drop(p, p->sim->cfg.reconnect_ms, "reboot");
}

static void handle_frame(struct sim_pile *p, const struct evcs_ykc_frame *f)
{
	evcs_sim_t *sim = p->sim;
	struct evcs_ykc_msg m;
	if (f->enc != 0)
		return;
	enum evcs_ykc_status stt = evcs_ykc_decode_frame(f, (enum evcs_ykc_proto)p->proto, &m, NULL);
	if (stt != EVCS_YKC_OK && stt != EVCS_YKC_BODY_LONG) {
		slog(sim, EVCS_SIM_LOG_WARN, "pile %s: dropped 0x%02X with a bad body (status %d)", p->serial,
		     f->type, (int)stt);
		return;
	}
	const uint8_t *seq = f->seq;
	if (sim->cfg.accept_echo && evcs_ykc_from_pile(f->type)) {
		/* a plain echo server sends our own frames back */
		if (f->type == 0x01 && p->state == PS_LOGIN) {
			p->echo = true;
			sim->st.logins_ok++;
			go_ready(p);
		} else if (f->type == 0x03 && p->echo) {
			got_heartbeat_ack(p, m.u.heartbeat.gun);
		}
		return;
	}
	if (p->state < PS_LOGIN)
		return;
	if (p->state == PS_LOGIN && f->type != 0x02)
		return; /* nothing counts before the login answer */
	switch (f->type) {
	case 0x02:
		if (p->state != PS_LOGIN)
			break;
		if (m.u.pile_result.result != 0) {
			sim->st.logins_refused++;
			if (!p->refused_logged)
				slog(sim, EVCS_SIM_LOG_WARN,
				     "pile %s: LOGIN REFUSED by the server (0x02 result %u): register serial %s there first",
				     p->serial, m.u.pile_result.result, p->serial);
			p->refused_logged = true;
			emit(p, EVCS_SIM_EV_LOGIN_REFUSED, 0, NULL, 0, 0, NULL);
			pile_drop(p, sim->cfg.refused_retry_ms, "login refused");
			return;
		}
		sim->st.logins_ok++;
		p->refused_logged = false;
		p->state = PS_MODEL;
		slog(sim, EVCS_SIM_LOG_INFO, "pile %s: logged in (YKC %u.%u)", p->serial, p->proto / 10,
		     p->proto % 10);
		emit(p, EVCS_SIM_EV_LOGIN_OK, 0, NULL, 0, 0, NULL);
		/* power-up order (ykc.md §1.2): stored records first, then the model check */
		for (unsigned i = 0; i < p->nguns; i++)
			if (p->guns[i].record) {
				send_record(p, &p->guns[i]);
				sim->st.records_resent++;
				emit(p, EVCS_SIM_EV_RECORD_RESENT, i + 1, p->guns[i].record->trade_no, 0, 0, NULL);
			}
		send_model_check(p);
		p->retry_at = real_ms(sim) + sim->cfg.login_retry_ms;
		schedule(p);
		break;
	case 0x04:
		got_heartbeat_ack(p, m.u.heartbeat_reply.gun);
		break;
	case 0x06:
		if (p->state != PS_MODEL)
			break;
		if (m.u.model.result == 0 && p->have_tariff) {
			go_ready(p);
		} else {
			p->asked_model = true;
			send_model_check(p);
			p->retry_at = real_ms(sim) + sim->cfg.login_retry_ms;
			schedule(p);
		}
		break;
	case 0x0A:
		got_tariff(p, &m.u.tariff);
		if (p->state == PS_MODEL)
			go_ready(p);
		break;
	case 0x58:
		if (any_charging(p)) {
			send_pile_result(p, 0x57, 0, seq);
		} else {
			got_tariff(p, &m.u.tariff);
			send_pile_result(p, 0x57, 1, seq);
		}
		break;
	case 0x12: {
		int gi = gun_index(p, m.u.pile_gun.gun);
		if (gi >= 0)
			send_realtime(p, (unsigned)gi);
		break;
	}
	case 0x32:
		start_auth(p, &m.u.start_auth);
		break;
	case 0x34:
		remote_start(p, &m.u.remote_start, seq);
		break;
	case 0x36:
		remote_stop(p, &m.u.pile_gun, seq);
		break;
	case 0x40:
		record_ack(p, &m.u.record_ack);
		break;
	case 0x42: {
		struct evcs_ykc_msg a = {.type = 0x41};
		memcpy(a.u.balance_reply.pile, p->serial, 15);
		memcpy(a.u.balance_reply.physical_card, m.u.balance_update.physical_card, 8);
		send_msg(p, &a, seq);
		break;
	}
	case 0x52:
		send_pile_result(p, 0x51, 1, seq);
		break;
	case 0x56:
		time_sync(p, &m.u.time_sync, seq);
		break;
	case 0x62: {
		struct evcs_ykc_msg a = {.type = 0x63};
		memcpy(a.u.ground_lock_reply.pile, p->serial, 15);
		memcpy(a.u.ground_lock_reply.gun, m.u.ground_lock_command.gun, 3);
		a.u.ground_lock_reply.result = 1;
		send_msg(p, &a, seq);
		break;
	}
	case 0x92:
		send_pile_result(p, 0x91, 1, seq);
		if (m.u.reboot.control == 2 && any_charging(p)) {
			p->reboot_when_idle = true;
		} else {
			reboot_now(p);
			return;
		}
		break;
	default:
		slog(sim, EVCS_SIM_LOG_DEBUG, "pile %s: 0x%02X not simulated, ignored", p->serial, f->type);
		break;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct sim_pile *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	if (!n)
		return;
	const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)n);
	p->sim->st.bytes_rx += n;
	struct evcs_ykc_scan s;
	evcs_ykc_scan_init(&s, buf, n, 0);
	struct evcs_ykc_frame f;
	while (evcs_ykc_scan_next(&s, &f)) {
		p->sim->st.frames_rx++;
		handle_frame(p, &f);
		if (p->bev != bev)
			return; /* dropped while handling; the buffer went with it */
		if (p->draining)
			break;
	}
	/* bytes_rx counts each byte once: what stays is counted again next time */
	p->sim->st.bytes_rx -= evcs_ykc_scan_keep(&s);
	evbuffer_drain(in, s.pos);
}

/* ------------------------------------------------------------------------ */
/* The pile's timer.                                                         */

static void want(int64_t *next, int64_t t)
{
	if (t < *next)
		*next = t;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

static void schedule(struct sim_pile *p)
{
	evcs_sim_t *sim = p->sim;
	if (!p->started || p->draining)
		return;
	int64_t next = NEVER;
	if (p->dq_head)
		want(&next, p->dq_head->due);
	if (p->state == PS_OFF || p->state == PS_CONNECTING || p->state == PS_LOGIN || p->state == PS_MODEL)
		want(&next, p->retry_at);
	if (p->state == PS_READY && !sim->cfg.flood)
		want(&next, p->next_hb);
	if (p->state == PS_READY && sim->cfg.flood)
		want(&next, p->last_hb_ack + 10000);
	for (unsigned i = 0; i < p->nguns && !p->echo; i++) {
		struct sim_gun *g = &p->guns[i];
		if (g->state == GS_CHARGING) {
			want(&next, pile_to_real(p, g->plan_sim < g->fault_sim ? g->plan_sim : g->fault_sim));
			if (p->state == PS_READY)
				want(&next, g->next_report);
		} else if (p->state == PS_READY) {
			want(&next, g->next_report);
			if (g->state == GS_FAULT || g->state == GS_STARTING ||
			    (g->state == GS_IDLE && sim->cfg.auto_start))
				want(&next, g->idle_until);
		}
		if (g->record && p->state >= PS_MODEL)
			want(&next, g->next_resend);
	}
	if (next == NEVER) {
		evtimer_del(p->tmr);
		return;
	}
	int64_t d = next - real_ms(sim);
	if (d < 0)
		d = 0;
	struct timeval tv = {.tv_sec = d / 1000, .tv_usec = (d % 1000) * 1000};
	evtimer_add(p->tmr, &tv);
}

static void tick_gun(struct sim_pile *p, unsigned gi, int64_t now)
{
	evcs_sim_t *sim = p->sim;
	struct sim_gun *g = &p->guns[gi];
	if (g->state == GS_CHARGING) {
		int64_t t = pile_clock(p);
		int64_t stop = g->plan_sim < g->fault_sim ? g->plan_sim : g->fault_sim;
		if (t >= stop) {
			uint8_t reason = g->stop_reason;
			if (g->fault_sim <= g->plan_sim) {
				static const uint8_t faults[3] = {0x6B, 0x6D, 0x70};
				reason = faults[rnd(sim) % 3];
			}
			end_session(p, gi, stop, reason);
		} else if (p->state == PS_READY && now >= g->next_report) {
			send_realtime(p, gi);
			g->next_report = now + sim_s_real(sim, sim->cfg.report_s);
		}
	} else if (p->state == PS_READY) {
		if (g->state == GS_FAULT && now >= g->idle_until) {
			g->state = GS_IDLE;
			g->hw_fault = 0;
			g->idle_until = now + sim_s_real(sim, sim->cfg.idle_s);
			send_realtime(p, gi);
		} else if (g->state == GS_STARTING && now >= g->idle_until) {
			slog(sim, EVCS_SIM_LOG_WARN, "pile %s gun %u: no 0x32 for the card start", p->serial, gi + 1);
			g->state = GS_IDLE;
			g->idle_until = now + sim_s_real(sim, sim->cfg.idle_s);
		} else if (g->state == GS_IDLE && sim->cfg.auto_start && now >= g->idle_until && p->have_tariff) {
			send_card_start(p, gi);
		}
		if (g->state != GS_CHARGING && now >= g->next_report) {
			send_realtime(p, gi);
			g->next_report = now + sim_s_real(sim, sim->cfg.idle_report_s);
		}
	}
	if (g->record && p->state >= PS_MODEL && now >= g->next_resend) {
		if (g->resends < sim->cfg.resend_max) {
			g->resends++;
			sim->st.records_resent++;
			send_record(p, g);
			emit(p, EVCS_SIM_EV_RECORD_RESENT, gi + 1, g->record->trade_no, 0, 0, NULL);
			g->next_resend = now + sim_s_real(sim, sim->cfg.resend_s);
		} else {
			slog(sim, EVCS_SIM_LOG_WARN, "pile %s gun %u: record %s never acknowledged, giving up",
			     p->serial, gi + 1, g->record->trade_no);
			free(g->record);
			g->record = NULL;
		}
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sim_pile *p = arg;
	evcs_sim_t *sim = p->sim;
	int64_t now = real_ms(sim);
	if (p->draining)
		return;
	while (p->dq_head && p->dq_head->due <= now) {
		struct sim_delayed *d = p->dq_head;
		p->dq_head = d->next;
		if (!p->dq_head)
			p->dq_tail = NULL;
		write_raw(p, d->b, d->n);
		free(d);
	}
	switch (p->state) {
	case PS_OFF:
		if (now >= p->retry_at) {
			pile_connect(p);
			return;
		}
		break;
	case PS_CONNECTING:
		if (now >= p->retry_at) {
			sim->st.connect_failures++;
			pile_drop(p, sim->cfg.reconnect_ms, "connect timeout");
			return;
		}
		break;
	case PS_LOGIN:
		if (now >= p->retry_at) {
			send_login(p);
			p->retry_at = now + sim->cfg.login_retry_ms;
		}
		break;
	case PS_MODEL:
		if (now >= p->retry_at) {
			send_model_check(p);
			p->retry_at = now + sim->cfg.login_retry_ms;
		}
		break;
	case PS_READY:
		if (sim->cfg.flood) {
			if (now - p->last_hb_ack >= 10000) {
				pile_drop(p, sim->cfg.reconnect_ms, "no heartbeat answers");
				return;
			}
		} else if (now >= p->next_hb) {
			int64_t per = sim_s_real(sim, sim->cfg.heartbeat_s);
			/* SPEC §6.3: three heartbeats without 0x04 and the pile reconnects; at
			 * least 10 s real so a fast clock does not punish a slow server */
			int64_t give_up = 3 * per > 10000 ? 3 * per : 10000;
			if (now - p->last_hb_ack > give_up) {
				pile_drop(p, sim->cfg.reconnect_ms, "no heartbeat answers");
				return;
			}
			for (unsigned i = 0; i < p->nguns; i++)
				send_heartbeat(p, i);
			p->next_hb += per;
			if (p->next_hb <= now)
				p->next_hb = now + per;
		}
		break;
	}
	if (!p->echo)
		for (unsigned i = 0; i < p->nguns; i++)
			tick_gun(p, i, now);
	if (p->reboot_when_idle && !any_charging(p)) {
		reboot_now(p);
		return;
	}
	schedule(p);
}

/* ------------------------------------------------------------------------ */
/* Public API.                                                               */

void evcs_sim_config_default(struct evcs_sim_config *c)
{
	memset(c, 0, sizeof(*c));
	c->host = "127.0.0.1";
	c->port = 8768;
	c->speed = 1;
	c->tz_offset_min = 480;
	c->heartbeat_s = 10;
	c->report_s = 15;
	c->idle_report_s = 300;
	c->power_w = 60000;
	c->idle_s = 60;
	c->fault_recover_s = 120;
	c->resend_s = 30;
	c->resend_max = 3;
	c->reconnect_ms = 2000;
	c->refused_retry_ms = 30000;
	c->login_retry_ms = 5000;
	c->log_level = EVCS_SIM_LOG_WARN;
}

static unsigned default_per_src(void)
{
	unsigned lo = 32768, hi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2 || hi <= lo)
			lo = 32768, hi = 60999;
		fclose(f);
	}
	unsigned n = hi - lo + 1;
	/* leave room for the kernel's other users of the range */
	n = n > 2000 ? n - 1000 : n / 2;
	return n > 30000 ? 30000 : n;
}

evcs_sim_t *evcs_sim_new(struct event_base *base, const struct evcs_sim_config *c)
{
	if (!base || !c || !c->host || !c->port || !c->speed || c->power_w == 0 || c->heartbeat_s == 0 ||
	    c->report_s == 0 || c->loss_permille > 1000 || c->fault_permille > 1000 ||
	    (c->src_first && c->src_last < c->src_first))
		return NULL;
	evcs_sim_t *sim = calloc(1, sizeof(*sim));
	if (!sim)
		return NULL;
	sim->base = base;
	sim->cfg = *c;
	sim->host = strdup(c->host);
	sim->cfg.host = sim->host;
	sim->port15 = c->port15;
	if (!sim->cfg.idle_report_s)
		sim->cfg.idle_report_s = 300;
	if (!sim->cfg.login_retry_ms)
		sim->cfg.login_retry_ms = 5000;
	if (sim->cfg.src_first && !sim->cfg.per_src)
		sim->cfg.per_src = default_per_src();
	sim->rng = c->seed ? c->seed : 1;
	sim->dst.sin_family = AF_INET;
	sim->dst.sin_port = htons(c->port);
	if (!sim->host || inet_pton(AF_INET, c->host, &sim->dst.sin_addr) != 1) {
		struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
		if (!sim->host || getaddrinfo(c->host, NULL, &hints, &res) != 0 || !res) {
			slog(sim, EVCS_SIM_LOG_ERR, "cannot resolve %s", c->host);
			free(sim->host);
			free(sim);
			return NULL;
		}
		sim->dst.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
		freeaddrinfo(res);
	}
	sim->t0_us = mono_us();
	if (c->clock_start) {
		sim->sim0_ms = c->clock_start * 1000;
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		sim->sim0_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	return sim;
}

static void free_pile(struct sim_pile *p)
{
	if (p->bev)
		bufferevent_free(p->bev);
	if (p->tmr)
		event_free(p->tmr);
	free_delayed(p);
	for (unsigned i = 0; i < p->nguns; i++)
		free(p->guns[i].record);
	free(p);
}

void evcs_sim_free(evcs_sim_t *sim)
{
	if (!sim)
		return;
	for (unsigned i = 0; i < sim->npiles; i++)
		free_pile(sim->piles[i]);
	free(sim->piles);
	if (sim->ramp)
		event_free(sim->ramp);
	free(sim->host);
	free(sim);
}

static struct sim_pile *find_pile(const evcs_sim_t *sim, const char *serial)
{
	for (unsigned i = 0; i < sim->npiles; i++)
		if (strcmp(sim->piles[i]->serial, serial) == 0)
			return sim->piles[i];
	return NULL;
}

int evcs_sim_add_pile(evcs_sim_t *sim, const char *serial, enum evcs_ykc_proto proto, unsigned guns)
{
	if (!serial || strlen(serial) != 14 || strspn(serial, "0123456789") != 14 || guns < 1 || guns > 99 ||
	    (proto != EVCS_YKC_PROTO_15 && proto != EVCS_YKC_PROTO_16))
		return -EINVAL;
	/* a linear duplicate check would make N adds O(N^2); serials from the CLI are
	 * generated unique, so only small (embedded) simulators are checked */
	if (sim->npiles < 4096 && find_pile(sim, serial))
		return -EEXIST;
	if (sim->npiles == sim->cap) {
		unsigned cap = sim->cap ? sim->cap * 2 : 16;
		struct sim_pile **np = realloc(sim->piles, cap * sizeof(*np));
		if (!np)
			return -ENOMEM;
		sim->piles = np;
		sim->cap = cap;
	}
	struct sim_pile *p = calloc(1, sizeof(*p) + guns * sizeof(struct sim_gun));
	if (!p)
		return -ENOMEM;
	p->sim = sim;
	p->idx = sim->npiles;
	memcpy(p->serial, serial, 15);
	p->proto = (uint8_t)proto;
	p->nguns = (uint8_t)guns;
	p->tmr = evtimer_new(sim->base, on_timer, p);
	if (!p->tmr) {
		free(p);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < guns; i++)
		/* a plausible, distinct meter reading per gun */
		p->guns[i].meter = 10000000 + rnd(sim) % 100000000;
	sim->piles[sim->npiles++] = p;
	sim->st.piles = sim->npiles;
	return (int)p->idx;
}

static void start_pile(struct sim_pile *p)
{
	p->started = true;
	pile_connect(p);
}

static void on_ramp(evutil_socket_t fd, short what, void *arg)
{
	evcs_sim_t *sim = arg;
	/* 100 ticks a second; carry the fraction so low rates still progress */
	unsigned k = sim->cfg.ramp_per_s / 100;
	if (k == 0)
		k = (rnd(sim) % 100) < sim->cfg.ramp_per_s ? 1 : 0;
	while (k-- && sim->next_start < sim->npiles)
		start_pile(sim->piles[sim->next_start++]);
	if (sim->next_start < sim->npiles) {
		struct timeval tv = {0, 10000};
		evtimer_add(sim->ramp, &tv);
	}
}

int evcs_sim_start(evcs_sim_t *sim)
{
	if (!sim->cfg.ramp_per_s) {
		while (sim->next_start < sim->npiles)
			start_pile(sim->piles[sim->next_start++]);
		return 0;
	}
	if (!sim->ramp && !(sim->ramp = evtimer_new(sim->base, on_ramp, sim)))
		return -ENOMEM;
	on_ramp(-1, 0, sim);
	return 0;
}

int evcs_sim_card_start(evcs_sim_t *sim, const char *serial, unsigned gun)
{
	struct sim_pile *p = find_pile(sim, serial);
	if (!p || gun < 1 || gun > p->nguns)
		return -ENOENT;
	if (p->state != PS_READY || p->guns[gun - 1].state != GS_IDLE || !p->have_tariff)
		return -EAGAIN;
	send_card_start(p, gun - 1);
	schedule(p);
	return 0;
}

void evcs_sim_drop_all(evcs_sim_t *sim)
{
	for (unsigned i = 0; i < sim->npiles; i++)
		if (sim->piles[i]->bev)
			pile_drop(sim->piles[i], sim->cfg.reconnect_ms, "dropped by the simulator");
}

void evcs_sim_get_stats(const evcs_sim_t *sim, struct evcs_sim_stats *st)
{
	*st = sim->st;
	uint64_t n = 0, p50 = 0, p90 = 0, p99 = 0;
	for (unsigned b = 0; b < RTT_BUCKETS; b++) {
		n += sim->rtt_hist[b];
		if (!p50 && n * 100 >= sim->st.rtt_n * 50)
			p50 = rtt_value(b);
		if (!p90 && n * 100 >= sim->st.rtt_n * 90)
			p90 = rtt_value(b);
		if (!p99 && n * 100 >= sim->st.rtt_n * 99)
			p99 = rtt_value(b);
	}
	if (!sim->st.rtt_n)
		p50 = p90 = p99 = 0;
	st->rtt_p50_us = (uint32_t)(p50 > sim->rtt_max ? sim->rtt_max : p50);
	st->rtt_p90_us = (uint32_t)(p90 > sim->rtt_max ? sim->rtt_max : p90);
	st->rtt_p99_us = (uint32_t)(p99 > sim->rtt_max ? sim->rtt_max : p99);
	st->rtt_max_us = sim->rtt_max;
}

void evcs_sim_rtt_reset(evcs_sim_t *sim)
{
	memset(sim->rtt_hist, 0, sizeof(sim->rtt_hist));
	sim->st.rtt_n = 0;
	sim->rtt_max = 0;
}

int evcs_sim_parse_addr_range(const char *s, uint32_t *first, uint32_t *last)
{
	char a[32], b[32];
	const char *dash = strchr(s, '-');
	size_t la = dash ? (size_t)(dash - s) : strlen(s);
	if (la == 0 || la >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, la);
	a[la] = 0;
	snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
	struct in_addr x, y;
	if (inet_pton(AF_INET, a, &x) != 1 || inet_pton(AF_INET, b, &y) != 1)
		return -EINVAL;
	*first = ntohl(x.s_addr);
	*last = ntohl(y.s_addr);
	return *first && *last >= *first ? 0 : -EINVAL;
}
