/*
 * tests/bench/bench_script.c: sessions priced per second through the default
 * tariff script (scripts/tariff.lua), both from per-period energy and from
 * meter samples (one every 5 minutes over a 3-hour session crossing midnight).
 * Not a test: run ./tests/bench/bench_script [N] by hand. Prints one line per
 * mode; the last figure is what docs quote.
 */
#include "script.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	if (n <= 0)
		n = 20000;
	evcs_script_engine_t *e = evcs_script_engine_new(NULL);
	char *err = NULL;
	if (!e || evcs_script_load_file(e, 1, "tariff", EVCS_TEST_SRCDIR "/scripts/tariff.lua", &err)) {
		fprintf(stderr, "load: %s\n", err ? err : "?");
		return 1;
	}
	evcs_tariff_model_t m;
	if (evcs_script_tariff(e, 1, NULL, &m, &err))
		return 1;
	enum { NS = 37 };
	evcs_meter_sample_t sm[NS];
	const int64_t start = 1714570200; /* 2024-05-01 21:30 +08:00 */
	for (int i = 0; i < NS; i++) {
		sm[i].ts = start + i * 300;
		sm[i].kwh = 1000000 + i * 8333;
	}
	for (int mode = 0; mode < 2; mode++) {
		evcs_session_t s = {.tenant_id = 1, .pile = "32010600019236", .gun = 1, .start = start,
				    .stop = start + 3 * 3600, .tz_offset_min = 480,
				    .period_kwh = {10000, 20000, 30000, 40000}, .tariff = &m, .pile_amount = -1};
		if (mode == 1) {
			s.samples = sm;
			s.nsamples = NS;
		}
		evcs_bill_t b;
		int64_t check = 0;
		double t0 = now_s();
		for (long i = 0; i < n; i++) {
			if (evcs_script_quote(e, 1, &s, &b, &err)) {
				fprintf(stderr, "quote: %s\n", err);
				return 1;
			}
			check += b.total;
		}
		double dt = now_s() - t0;
		printf("%-14s %ld sessions in %.3f s = %.0f sessions/s (checksum %lld)\n",
		       mode ? "meter-samples" : "period-energy", n, dt, n / dt, (long long)check);
	}
	evcs_script_engine_free(e);
	return 0;
}
