/*
 * plugins/ykc/sim.c: evcs-sim, the command-line front end of the YKC charger
 * simulator (sim.h). Parses options, adds the piles, runs one event loop until
 * --duration or SIGINT/SIGTERM, prints periodic load figures to stderr and a
 * final report (text, or JSON on stdout with --json). Exit status: 0, or 1 when
 * no pile ever logged in (so scripts notice a wrong port or unregistered serials),
 * 2 on a usage error. See plugins/ykc/SIMULATOR.md.
 */
#include "sim.h"

#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cli {
	evcs_sim_t *sim;
	struct event_base *base;
	bool json, verbose;
	unsigned piles_n, refused_shown;
	unsigned stats_s;
	double t_start;
	struct evcs_sim_stats last;
	double last_t;
	double peak_connects_s, peak_frames_s;
	bool rtt_steady; /* latency samples restarted once every pile was ready */
	uint64_t sessions_shown;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void stamp(char *buf, size_t cap)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	strftime(buf, cap, "%H:%M:%S", &tm);
}

static void on_log(void *arg, int level, const char *msg)
{
	char t[16];
	stamp(t, sizeof(t));
	fprintf(stderr, "%s evcs-sim: %s%s\n", t, level <= EVCS_SIM_LOG_ERR ? "error: " : "", msg);
}

static void on_event(void *arg, const struct evcs_sim_event *ev)
{
	struct cli *c = arg;
	char t[16];
	stamp(t, sizeof(t));
	switch (ev->type) {
	case EVCS_SIM_EV_LOGIN_REFUSED:
		/* the first few in full; a load run with unregistered serials would flood */
		if (c->refused_shown < 10)
			fprintf(stderr,
				"%s evcs-sim: LOGIN REFUSED for pile %s: the server does not know this serial; "
				"register it (e.g. add the pile to a station) and it will log in on the next retry\n",
				t, ev->pile);
		else if (c->refused_shown == 10)
			fprintf(stderr, "%s evcs-sim: more logins refused; see the 'refused' count below\n", t);
		c->refused_shown++;
		break;
	case EVCS_SIM_EV_SESSION_START:
		if (c->verbose || c->piles_n <= 10)
			fprintf(stderr, "%s evcs-sim: pile %s gun %u: charging (trade %s)\n", t, ev->pile, ev->gun,
				ev->trade_no);
		break;
	case EVCS_SIM_EV_SAMPLE:
		if (c->verbose)
			fprintf(stderr, "%s evcs-sim: pile %s gun %u: %" PRId64 ".%04" PRId64 " kWh, %u.%04u yuan\n", t,
				ev->pile, ev->gun, ev->energy / 10000, ev->energy % 10000, ev->amount / 10000,
				ev->amount % 10000);
		break;
	case EVCS_SIM_EV_SESSION_END:
		if (c->verbose || c->piles_n <= 10) {
			const struct evcs_ykc_record *r = ev->record;
			fprintf(stderr,
				"%s evcs-sim: pile %s gun %u: record %s sent: %u.%04u kWh "
				"(sharp %u.%04u peak %u.%04u flat %u.%04u valley %u.%04u), %u.%04u yuan, stop 0x%02X\n",
				t, ev->pile, ev->gun, ev->trade_no, r->total_kwh / 10000, r->total_kwh % 10000,
				r->sharp_kwh / 10000, r->sharp_kwh % 10000, r->peak_kwh / 10000, r->peak_kwh % 10000,
				r->flat_kwh / 10000, r->flat_kwh % 10000, r->valley_kwh / 10000, r->valley_kwh % 10000,
				r->total_amount_yuan / 10000, r->total_amount_yuan % 10000, r->stop_reason);
		}
		break;
	case EVCS_SIM_EV_LOGIN_OK:
		if (c->verbose || c->piles_n <= 10)
			fprintf(stderr, "%s evcs-sim: pile %s logged in\n", t, ev->pile);
		break;
	case EVCS_SIM_EV_RECORD_ACKED:
		if (c->verbose || c->piles_n <= 10)
			fprintf(stderr, "%s evcs-sim: pile %s gun %u: record %s acknowledged\n", t, ev->pile, ev->gun,
				ev->trade_no);
		break;
	default:
		break;
	}
}

static void print_stats(struct cli *c)
{
	struct evcs_sim_stats st;
	evcs_sim_get_stats(c->sim, &st);
	double t = now_s(), dt = t - c->last_t;
	if (dt <= 0)
		dt = 1e-9;
	double cps = (double)(st.connects - c->last.connects) / dt;
	double fps = (double)(st.frames_tx - c->last.frames_tx + st.frames_rx - c->last.frames_rx) / dt;
	if (cps > c->peak_connects_s)
		c->peak_connects_s = cps;
	if (fps > c->peak_frames_s)
		c->peak_frames_s = fps;
	char ts[16];
	stamp(ts, sizeof(ts));
	fprintf(stderr,
		"%s evcs-sim: piles %u connected %u ready %u charging %u refused %" PRIu64 " | connects/s %.0f "
		"frames/s %.0f (tx %" PRIu64 " rx %" PRIu64 " lost %" PRIu64 ") | hb rtt p50 %.3f ms p99 %.3f ms"
		" | sessions %" PRIu64 "/%" PRIu64 " resent %" PRIu64 " drops %" PRIu64 "\n",
		ts, st.piles, st.connected, st.ready, st.charging, st.logins_refused, cps, fps, st.frames_tx,
		st.frames_rx, st.frames_lost, st.rtt_p50_us / 1000.0, st.rtt_p99_us / 1000.0, st.sessions_ended,
		st.sessions_started, st.records_resent, st.disconnects);
	c->last = st;
	c->last_t = t;
	/* the ramp's connect bursts are not the steady state the percentiles describe */
	if (!c->rtt_steady && st.ready == st.piles) {
		evcs_sim_rtt_reset(c->sim);
		c->rtt_steady = true;
	}
}

static void on_stats(evutil_socket_t fd, short what, void *arg) { print_stats(arg); }

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct cli *c = arg;
	event_base_loopexit(c->base, NULL);
}

static void final_report(struct cli *c)
{
	struct evcs_sim_stats st;
	evcs_sim_get_stats(c->sim, &st);
	double el = now_s() - c->t_start;
	if (el <= 0)
		el = 1e-9;
	if (c->json) {
		json_t *o = json_pack("{s:f, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}",
				      "elapsed_s", el, "piles", (json_int_t)st.piles, "connected", (json_int_t)st.connected,
				      "ready", (json_int_t)st.ready, "charging", (json_int_t)st.charging, "connects",
				      (json_int_t)st.connects, "connect_failures", (json_int_t)st.connect_failures,
				      "disconnects", (json_int_t)st.disconnects, "logins_ok", (json_int_t)st.logins_ok,
				      "logins_refused", (json_int_t)st.logins_refused, "peak_connects_per_s",
				      c->peak_connects_s, "peak_frames_per_s", c->peak_frames_s, "avg_frames_per_s",
				      (double)(st.frames_tx + st.frames_rx) / el);
		json_t *fr = json_pack("{s:I, s:I, s:I, s:I, s:I}", "tx", (json_int_t)st.frames_tx, "rx",
				       (json_int_t)st.frames_rx, "lost", (json_int_t)st.frames_lost, "bytes_tx",
				       (json_int_t)st.bytes_tx, "bytes_rx", (json_int_t)st.bytes_rx);
		json_t *se = json_pack("{s:I, s:I, s:I, s:I, s:I}", "started", (json_int_t)st.sessions_started,
				       "ended", (json_int_t)st.sessions_ended, "records_resent",
				       (json_int_t)st.records_resent, "records_acked", (json_int_t)st.records_acked,
				       "faults", (json_int_t)st.faults);
		json_t *hb = json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "sent", (json_int_t)st.hb_sent, "acked",
				       (json_int_t)st.hb_acked, "rtt_samples", (json_int_t)st.rtt_n, "rtt_p50_ms",
				       st.rtt_p50_us / 1000.0, "rtt_p90_ms", st.rtt_p90_us / 1000.0, "rtt_p99_ms",
				       st.rtt_p99_us / 1000.0, "rtt_max_ms", st.rtt_max_us / 1000.0);
		if (!o || !fr || !se || !hb) {
			fprintf(stderr, "evcs-sim: cannot build the JSON report\n");
			json_decref(o);
			json_decref(fr);
			json_decref(se);
			json_decref(hb);
			return;
		}
		json_object_set_new(o, "frames", fr);
		json_object_set_new(o, "sessions", se);
		json_object_set_new(o, "heartbeat", hb);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(o);
		return;
	}
	printf("evcs-sim report after %.1f s\n", el);
	printf("  piles %u, connected %u, ready %u; connects %" PRIu64 " (failed %" PRIu64 "), drops %" PRIu64 "\n",
	       st.piles, st.connected, st.ready, st.connects, st.connect_failures, st.disconnects);
	printf("  logins ok %" PRIu64 ", refused %" PRIu64 "\n", st.logins_ok, st.logins_refused);
	printf("  frames tx %" PRIu64 " rx %" PRIu64 " lost %" PRIu64 "; avg %.0f frames/s, peak %.0f frames/s, peak "
	       "%.0f connects/s\n",
	       st.frames_tx, st.frames_rx, st.frames_lost, (double)(st.frames_tx + st.frames_rx) / el,
	       c->peak_frames_s, c->peak_connects_s);
	printf("  heartbeat -> 0x04 rtt: %" PRIu64 " samples, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
	       st.rtt_n, st.rtt_p50_us / 1000.0, st.rtt_p90_us / 1000.0, st.rtt_p99_us / 1000.0,
	       st.rtt_max_us / 1000.0);
	printf("  sessions started %" PRIu64 ", ended %" PRIu64 " (faults %" PRIu64 "), records resent %" PRIu64
	       ", acknowledged %" PRIu64 "\n",
	       st.sessions_started, st.sessions_ended, st.faults, st.records_resent, st.records_acked);
	if (st.logins_ok == 0 && st.logins_refused > 0)
		printf("  NO PILE LOGGED IN: every login was refused; register the serials on the server\n");
}

static void usage(FILE *f)
{
	fputs("usage: evcs-sim --host H --port P [options]\n"
	      "Simulates YKC 1.5/1.6 charging piles over TCP (see SIMULATOR.md).\n"
	      "  --host H              server address (default 127.0.0.1)\n"
	      "  --port P              YKC listener (1.6 piles, and 1.5 piles without --port15)\n"
	      "  --port15 P            listener for 1.5 piles\n"
	      "  --piles N             number of piles (default 1)\n"
	      "  --guns M              guns per pile, 1-99 (default 1)\n"
	      "  --mix 1.5:30,1.6:70   protocol mix in percent (default 1.6:100)\n"
	      "  --serial-base S       first serial, 14 digits (default 32010600000001); pile i = S + i\n"
	      "  --speed X             simulated seconds per real second (default 1)\n"
	      "  --clock YYYY-MM-DDTHH:MM:SS  simulated wall-clock start (pile local time; default now)\n"
	      "  --tz-offset MIN       pile clock zone offset from UTC in minutes (default 480)\n"
	      "  --charge-minutes N    session length in simulated minutes (default: until stopped)\n"
	      "  --charge-kwh X        stop at this energy (e.g. 12.5)\n"
	      "  --power-kw X          charging power per gun (default 60)\n"
	      "  --auto-start          piles start card sessions themselves (0x31)\n"
	      "  --idle-s N            gap between auto-started sessions, simulated s (default 60)\n"
	      "  --fault-rate R        chance 0..1 that a session ends in a random fault\n"
	      "  --wrong-amount        piles bill 10%% below rate x energy\n"
	      "  --loss-rate R         chance 0..1 that a frame the pile sends is lost\n"
	      "  --delay-ms N          hold every frame the pile sends N ms (slow link)\n"
	      "  --heartbeat-s N       heartbeat period per gun, simulated s (default 10)\n"
	      "  --report-s N          real-time data (0x13) period while charging, simulated s (default 15)\n"
	      "  --resend-s N          record resend period without 0x40, simulated s (default 30)\n"
	      "  --resend-max N        resends after the first send (default 3)\n"
	      "  --ramp N              new connections per second (default 2000; 0 = all at once)\n"
	      "  --source-addrs A[-B]  bind piles to these source addresses (127.0.0.2-127.0.0.20)\n"
	      "  --flood W             saturation: keep W heartbeats in flight per pile\n"
	      "  --echo                treat echoed frames as answers (plain echo server baseline)\n"
	      "  --duration S          stop after S real seconds (default: until Ctrl-C)\n"
	      "  --stats-s N           print load figures every N real seconds (default 5; 0 = never);\n"
	      "                        latency percentiles restart once every pile is ready\n"
	      "  --json                final report as JSON on stdout\n"
	      "  --seed N              random seed (faults, loss, meters)\n"
	      "  -v, --verbose         log every frame-level event\n"
	      "  -h, --help\n",
	      f);
}

/* "12.5" -> 125000 (units of 10^-scale); no floats on the money/energy path. */
static int parse_fixed(const char *s, unsigned scale, int64_t *out)
{
	int64_t ip = 0, fp = 0;
	unsigned nd = 0;
	const char *p = s;
	if (!*p)
		return -1;
	while (*p >= '0' && *p <= '9') {
		ip = ip * 10 + (*p++ - '0');
		if (ip > 100000000)
			return -1;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (nd < scale) {
				fp = fp * 10 + (*p - '0');
				nd++;
			}
			p++;
		}
	}
	if (*p)
		return -1;
	for (; nd < scale; nd++)
		fp *= 10;
	int64_t m = 1;
	for (unsigned i = 0; i < scale; i++)
		m *= 10;
	*out = ip * m + fp;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_mix(const char *s, unsigned *pct15)
{
	unsigned w15 = 0, w16 = 0;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned long w;
		if (strncmp(tok, "1.5:", 4) == 0 && parse_uint(tok + 4, 1000, &w) == 0)
			w15 = (unsigned)w;
		else if (strncmp(tok, "1.6:", 4) == 0 && parse_uint(tok + 4, 1000, &w) == 0)
			w16 = (unsigned)w;
		else
			return -1;
	}
	if (w15 + w16 == 0)
		return -1;
	*pct15 = w15 * 100 / (w15 + w16);
	return 0;
}

static int parse_clock(const char *s, int tz_min, int64_t *out)
{
	struct tm tm = {0};
	char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end || *end)
		return -1;
	*out = (int64_t)timegm(&tm) - (int64_t)tz_min * 60;
	return 0;
}

int main(int argc, char **argv)
{
	struct evcs_sim_config cfg;
	evcs_sim_config_default(&cfg);
	cfg.ramp_per_s = 2000;
	unsigned long piles = 1, guns = 1, duration = 0;
	unsigned pct15 = 0;
	const char *serial_base = "32010600000001", *clock_s = NULL;
	struct cli c = {.stats_s = 5};
	enum {
		O_HOST = 256, O_PORT, O_PORT15, O_PILES, O_GUNS, O_MIX, O_SERIAL, O_SPEED, O_CLOCK, O_TZ, O_CMIN,
		O_CKWH, O_POWER, O_AUTO, O_IDLE, O_FAULT, O_WRONG, O_LOSS, O_DELAY, O_HB, O_REPORT, O_RESEND,
		O_RESENDMAX, O_RAMP, O_SRC, O_FLOOD, O_ECHO, O_DURATION, O_STATS, O_JSON, O_SEED
	};
	static const struct option opts[] = {
		{"host", required_argument, 0, O_HOST}, {"port", required_argument, 0, O_PORT},
		{"port15", required_argument, 0, O_PORT15}, {"piles", required_argument, 0, O_PILES},
		{"guns", required_argument, 0, O_GUNS}, {"mix", required_argument, 0, O_MIX},
		{"serial-base", required_argument, 0, O_SERIAL}, {"speed", required_argument, 0, O_SPEED},
		{"clock", required_argument, 0, O_CLOCK}, {"tz-offset", required_argument, 0, O_TZ},
		{"charge-minutes", required_argument, 0, O_CMIN}, {"charge-kwh", required_argument, 0, O_CKWH},
		{"power-kw", required_argument, 0, O_POWER}, {"auto-start", no_argument, 0, O_AUTO},
		{"idle-s", required_argument, 0, O_IDLE}, {"fault-rate", required_argument, 0, O_FAULT},
		{"wrong-amount", no_argument, 0, O_WRONG}, {"loss-rate", required_argument, 0, O_LOSS},
		{"delay-ms", required_argument, 0, O_DELAY}, {"heartbeat-s", required_argument, 0, O_HB},
		{"report-s", required_argument, 0, O_REPORT}, {"resend-s", required_argument, 0, O_RESEND},
		{"resend-max", required_argument, 0, O_RESENDMAX}, {"ramp", required_argument, 0, O_RAMP},
		{"source-addrs", required_argument, 0, O_SRC}, {"flood", required_argument, 0, O_FLOOD},
		{"echo", no_argument, 0, O_ECHO}, {"duration", required_argument, 0, O_DURATION},
		{"stats-s", required_argument, 0, O_STATS}, {"json", no_argument, 0, O_JSON},
		{"seed", required_argument, 0, O_SEED}, {"verbose", no_argument, 0, 'v'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	int o;
	unsigned long u;
	int64_t fx;
	int tz_min = 480;
	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		bool bad = false;
		switch (o) {
		case O_HOST: cfg.host = optarg; break;
		case O_PORT: bad = parse_uint(optarg, 65535, &u) || !u; cfg.port = (uint16_t)u; break;
		case O_PORT15: bad = parse_uint(optarg, 65535, &u); cfg.port15 = (uint16_t)u; break;
		case O_PILES: bad = parse_uint(optarg, 10000000, &piles) || !piles; break;
		case O_GUNS: bad = parse_uint(optarg, 99, &guns) || !guns; break;
		case O_MIX: bad = parse_mix(optarg, &pct15) != 0; break;
		case O_SERIAL: serial_base = optarg; bad = strlen(optarg) != 14 || strspn(optarg, "0123456789") != 14; break;
		case O_SPEED: bad = parse_uint(optarg, 1000000, &u) || !u; cfg.speed = (unsigned)u; break;
		case O_CLOCK: clock_s = optarg; break;
		case O_TZ: {
			char *end;
			long v = strtol(optarg, &end, 10);
			bad = *end || v < -720 || v > 840;
			tz_min = (int)v;
			break;
		}
		case O_CMIN: bad = parse_uint(optarg, 100000, &u); cfg.charge_minutes = (unsigned)u; break;
		case O_CKWH: bad = parse_fixed(optarg, 4, &fx) != 0; cfg.charge_energy = fx; break;
		case O_POWER: bad = parse_fixed(optarg, 3, &fx) != 0 || fx <= 0 || fx > 4000000; cfg.power_w = (unsigned)fx; break;
		case O_AUTO: cfg.auto_start = true; break;
		case O_IDLE: bad = parse_uint(optarg, 10000000, &u); cfg.idle_s = (unsigned)u; break;
		case O_FAULT: bad = parse_fixed(optarg, 3, &fx) != 0 || fx > 1000; cfg.fault_permille = (unsigned)fx; break;
		case O_WRONG: cfg.wrong_amount = true; break;
		case O_LOSS: bad = parse_fixed(optarg, 3, &fx) != 0 || fx > 1000; cfg.loss_permille = (unsigned)fx; break;
		case O_DELAY: bad = parse_uint(optarg, 600000, &u); cfg.delay_ms = (unsigned)u; break;
		case O_HB: bad = parse_uint(optarg, 86400, &u) || !u; cfg.heartbeat_s = (unsigned)u; break;
		case O_REPORT: bad = parse_uint(optarg, 86400, &u) || !u; cfg.report_s = (unsigned)u; break;
		case O_RESEND: bad = parse_uint(optarg, 86400, &u) || !u; cfg.resend_s = (unsigned)u; break;
		case O_RESENDMAX: bad = parse_uint(optarg, 255, &u); cfg.resend_max = (unsigned)u; break;
		case O_RAMP: bad = parse_uint(optarg, 10000000, &u); cfg.ramp_per_s = (unsigned)u; break;
		case O_SRC: bad = evcs_sim_parse_addr_range(optarg, &cfg.src_first, &cfg.src_last) != 0; break;
		case O_FLOOD: bad = parse_uint(optarg, 10000, &u) || !u; cfg.flood = (unsigned)u; break;
		case O_ECHO: cfg.accept_echo = true; break;
		case O_DURATION: bad = parse_uint(optarg, 100000000, &duration); break;
		case O_STATS: bad = parse_uint(optarg, 86400, &u); c.stats_s = (unsigned)u; break;
		case O_JSON: c.json = true; break;
		case O_SEED: bad = parse_uint(optarg, ~0ul, &u); cfg.seed = u; break;
		case 'v': c.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad) {
			fprintf(stderr, "evcs-sim: bad value for --%s: %s\n", opts[o - O_HOST].name, optarg);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	cfg.tz_offset_min = tz_min;
	if (clock_s && parse_clock(clock_s, tz_min, &cfg.clock_start) != 0) {
		fprintf(stderr, "evcs-sim: bad --clock %s (want YYYY-MM-DDTHH:MM:SS)\n", clock_s);
		return 2;
	}
	cfg.log = on_log;
	cfg.on_event = on_event;
	cfg.arg = &c;
	cfg.log_level = c.verbose ? EVCS_SIM_LOG_INFO : EVCS_SIM_LOG_WARN;
	c.piles_n = (unsigned)piles;

	signal(SIGPIPE, SIG_IGN);
	c.base = event_base_new();
	if (!c.base) {
		fprintf(stderr, "evcs-sim: cannot create the event loop\n");
		return 1;
	}
	c.sim = evcs_sim_new(c.base, &cfg);
	if (!c.sim) {
		fprintf(stderr, "evcs-sim: bad configuration or unresolvable host %s\n", cfg.host);
		return 2;
	}
	uint64_t base_no = strtoull(serial_base, NULL, 10);
	if (base_no + piles > 99999999999999ull) {
		fprintf(stderr, "evcs-sim: --serial-base + --piles overflows 14 digits\n");
		return 2;
	}
	for (unsigned long i = 0; i < piles; i++) {
		char serial[16];
		snprintf(serial, sizeof(serial), "%014" PRIu64, base_no + i);
		/* spread the 1.5 piles evenly: pile i is 1.5 when round((i+1)p) > round(i p) */
		uint64_t a = ((uint64_t)(i + 1) * pct15 * 2 + 100) / 200, b = ((uint64_t)i * pct15 * 2 + 100) / 200;
		enum evcs_ykc_proto proto = a > b ? EVCS_YKC_PROTO_15 : EVCS_YKC_PROTO_16;
		int rc = evcs_sim_add_pile(c.sim, serial, proto, (unsigned)guns);
		if (rc < 0) {
			fprintf(stderr, "evcs-sim: cannot add pile %s: %s\n", serial, strerror(-rc));
			return 1;
		}
	}
	struct event *sigint = evsignal_new(c.base, SIGINT, on_stop, &c);
	struct event *sigterm = evsignal_new(c.base, SIGTERM, on_stop, &c);
	struct event *stats = event_new(c.base, -1, EV_PERSIST, on_stats, &c);
	struct event *stop = evtimer_new(c.base, on_stop, &c);
	if (!sigint || !sigterm || !stats || !stop) {
		fprintf(stderr, "evcs-sim: out of memory\n");
		return 1;
	}
	evsignal_add(sigint, NULL);
	evsignal_add(sigterm, NULL);
	if (c.stats_s) {
		struct timeval tv = {c.stats_s, 0};
		event_add(stats, &tv);
	}
	if (duration) {
		struct timeval tv = {(time_t)duration, 0};
		evtimer_add(stop, &tv);
	}
	fprintf(stderr, "evcs-sim: %lu piles x %lu guns -> %s:%u%s, speed x%u\n", piles, guns, cfg.host, cfg.port,
		pct15 ? " (1.5 piles on --port15 if set)" : "", cfg.speed);
	c.t_start = c.last_t = now_s();
	evcs_sim_start(c.sim);
	event_base_dispatch(c.base);
	if (c.stats_s)
		print_stats(&c);
	final_report(&c);
	struct evcs_sim_stats st;
	evcs_sim_get_stats(c.sim, &st);
	event_free(sigint);
	event_free(sigterm);
	event_free(stats);
	event_free(stop);
	evcs_sim_free(c.sim);
	event_base_free(c.base);
	return st.logins_ok > 0 ? 0 : 1;
}
