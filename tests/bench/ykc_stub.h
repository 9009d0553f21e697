/*
 * tests/bench/ykc_stub.h: a tiny scripted YKC server on one libevent loop, built
 * on the shared codec. Used in-process by tests/test_sim.c (which scripts it
 * frame by frame) and as a stand-alone stand-in for the ykc plugin by the
 * benchmarks (tests/bench/ykc-stub-server). Not production code: no database,
 * no tenancy, every serial accepted unless refused by the options.
 *
 * Contract: single-threaded on the caller's event_base. Answers what a platform
 * must answer (0x02, 0x04, 0x06, 0x0A, 0x32, optionally 0x40) and hands every
 * CRC-valid frame to on_frame afterwards. Connections are owned by the stub;
 * a conn pointer stays valid until on_close reports it or evcs_stub_free().
 */
#ifndef EVCS_TESTS_YKC_STUB_H
#define EVCS_TESTS_YKC_STUB_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"

struct event_base;
struct evcs_stub;
struct evcs_stub_conn;

struct evcs_stub_opts {
	enum evcs_ykc_proto proto;
	bool ack_records;            /* answer 0x3B with 0x40 result 0 */
	const char *refuse_serial;   /* answer this serial's 0x01 with result 1 and close; NULL none */
	bool auth_cards;             /* answer 0x31 with 0x32 authorised (else refused, reason 1) */
	struct evcs_ykc_tariff tariff; /* model code and rates for 0x06 / 0x0A */
	void (*on_frame)(void *arg, struct evcs_stub_conn *c, const struct evcs_ykc_frame *f,
			 const struct evcs_ykc_msg *m);
	void (*on_close)(void *arg, struct evcs_stub_conn *c);
	void *arg;
};

/* Default options: 1.6, records acknowledged, a 尖峰平谷 tariff, model "0101". */
void evcs_stub_opts_default(struct evcs_stub_opts *o);
/* Listen on addr:port (port 0 = ephemeral). NULL on failure (errno set). */
struct evcs_stub *evcs_stub_new(struct event_base *base, const char *addr, uint16_t port,
				const struct evcs_stub_opts *o);
void evcs_stub_free(struct evcs_stub *s);
uint16_t evcs_stub_port(const struct evcs_stub *s);
/* Options may be changed between frames (e.g. stop acknowledging records). */
struct evcs_stub_opts *evcs_stub_options(struct evcs_stub *s);
/* The logged-in connection of a serial, or NULL. */
struct evcs_stub_conn *evcs_stub_find(struct evcs_stub *s, const char *serial);
const char *evcs_stub_conn_serial(const struct evcs_stub_conn *c);
/* Send a platform frame (sequence from the connection's counter). 0 or -errno. */
int evcs_stub_send(struct evcs_stub_conn *c, const struct evcs_ykc_msg *m);
/* Close one connection now. */
void evcs_stub_close(struct evcs_stub_conn *c);

struct evcs_stub_counts {
	uint64_t accepted, closed, logins, frames_rx, frames_tx;
	uint64_t by_type[256];
	unsigned open;
};
const struct evcs_stub_counts *evcs_stub_counts(const struct evcs_stub *s);

#endif
