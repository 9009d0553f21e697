/*
 * plugins/ykc/sim.h: YKC 1.5/1.6 charger simulator core, shared by the evcs-sim
 * CLI and the ykcsim plugin behind the operator API's "simulated pile".
 * Reference: shared/docs/ykc.md.
 *
 * Contract
 * - One simulator lives on one caller-owned event_base and is driven by it: no
 *   threads, no globals. Every function must be called from the thread running
 *   that base. evcs_sim_free() closes every connection; call it before freeing
 *   the base.
 * - Each simulated pile is a TCP client with one bufferevent and one timer; all
 *   of its protocol timers are folded into that one timer so thousands of piles
 *   stay cheap (about 1-2 KiB each while idle, see SIMULATOR.md).
 * - Time: the simulated clock runs `speed` times faster than the monotonic
 *   clock, starting at clock_start. Protocol periods (heartbeat, real-time data,
 *   record resend, session length, auto-start gap, fault recovery) are in
 *   simulated seconds; network behaviour (reconnect delay, login/model retry,
 *   link delay, ramp) is in real time so a fast clock does not hammer a server.
 * - Energy and money are integers: energy in 0.0001 kWh, rates in 0.00001 yuan
 *   per kWh, amounts as on the YKC wire (0.0001 yuan). No floats in billing.
 * - Errors: int functions return >= 0 on success, a negative errno otherwise;
 *   pointer functions return NULL. Problems at run time (refused logins, drops)
 *   are reported through the log and event callbacks, never by aborting.
 */
#ifndef EVCS_YKC_SIM_H
#define EVCS_YKC_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"

struct event_base;
typedef struct evcs_sim evcs_sim_t;

enum evcs_sim_log_level { EVCS_SIM_LOG_ERR = 3, EVCS_SIM_LOG_WARN = 4, EVCS_SIM_LOG_INFO = 6,
			  EVCS_SIM_LOG_DEBUG = 7 };

enum evcs_sim_event_type {
	EVCS_SIM_EV_CONNECTED = 1,   /* TCP up, login sent */
	EVCS_SIM_EV_LOGIN_OK,        /* 0x02 result 0 */
	EVCS_SIM_EV_LOGIN_REFUSED,   /* 0x02 result != 0: serial not registered on the server */
	EVCS_SIM_EV_DISCONNECTED,    /* connection lost or dropped by the pile; it will reconnect */
	EVCS_SIM_EV_TARIFF,          /* billing model received (0x0A or 0x58) */
	EVCS_SIM_EV_SESSION_START,   /* gun started charging (0x33 success or 0x32 authorised) */
	EVCS_SIM_EV_SAMPLE,          /* 0x13 sent while charging (energy, amount) */
	EVCS_SIM_EV_SESSION_END,     /* first 0x3B sent; `record` points at it */
	EVCS_SIM_EV_RECORD_RESENT,   /* 0x3B sent again (no 0x40 yet) */
	EVCS_SIM_EV_RECORD_ACKED,    /* 0x40 for the gun's outstanding record */
	EVCS_SIM_EV_START_REFUSED,   /* 0x33 failure sent, or 0x32 not authorised */
	EVCS_SIM_EV_REBOOT,          /* 0x92 accepted; the pile drops and logs in again */
};

struct evcs_sim_event {
	enum evcs_sim_event_type type;
	const char *pile;    /* 14 digits */
	unsigned gun;        /* 1-based; 0 for pile-wide events */
	const char *trade_no; /* session events, else NULL */
	int64_t energy;      /* SAMPLE, SESSION_END: 0.0001 kWh so far */
	uint32_t amount;     /* SAMPLE, SESSION_END: pile's amount, 0.0001 yuan */
	const struct evcs_ykc_record *record; /* SESSION_END only; borrowed for the call */
};

struct evcs_sim_config {
	const char *host;        /* IPv4 literal or name (resolved once, IPv4); copied */
	uint16_t port;           /* listener for 1.6 piles (and 1.5 piles when port15 = 0) */
	uint16_t port15;         /* listener for 1.5 piles, 0 = port */
	unsigned speed;          /* simulated seconds per real second, >= 1 (default 1) */
	int64_t clock_start;     /* simulated unix time at evcs_sim_new(); 0 = now */
	int tz_offset_min;       /* pile wall clock vs UTC in minutes (default 480, UTC+8) */
	unsigned heartbeat_s;    /* 0x03 period per gun, simulated s (default 10) */
	unsigned report_s;       /* 0x13 period while charging, simulated s (default 15) */
	unsigned idle_report_s;  /* 0x13 period while idle, simulated s (default 300) */
	unsigned charge_minutes; /* session length, simulated minutes; 0 = until stopped */
	int64_t charge_energy;   /* stop at this energy, 0.0001 kWh; 0 = no limit */
	unsigned power_w;        /* constant charging power per gun (default 60000) */
	bool auto_start;         /* card start (0x31) when a gun is idle */
	unsigned idle_s;         /* auto-start gap after a session, simulated s (default 60) */
	unsigned fault_permille; /* chance a session ends in a random fault (0-1000) */
	unsigned fault_recover_s; /* simulated s a faulted gun stays faulted (default 120) */
	bool wrong_amount;       /* pile bills 10 % low: amounts differ from rate x energy */
	unsigned loss_permille;  /* chance each frame the pile sends is lost (0-1000) */
	unsigned delay_ms;       /* every frame the pile sends is held this long (real ms) */
	unsigned resend_s;       /* 0x3B resend period without 0x40, simulated s (default 30) */
	unsigned resend_max;     /* resends after the first send (default 3, SPEC §8.7) */
	unsigned reconnect_ms;   /* real ms before reconnecting after a drop (default 2000) */
	unsigned refused_retry_ms; /* real ms before retrying a refused login (default 30000) */
	unsigned login_retry_ms; /* real ms between unanswered 0x01 / 0x05 / 0x09 (default 5000) */
	unsigned ramp_per_s;     /* new connections started per real second; 0 = no limit */
	unsigned flood;          /* >0: keep this many heartbeats in flight per pile (saturation) */
	bool accept_echo;        /* an echoed 0x01/0x03 counts as 0x02/0x04 (echo baseline) */
	uint32_t src_first, src_last; /* source IPv4 range, host byte order; 0 = kernel's choice */
	unsigned per_src;        /* connections per source address; 0 = from ip_local_port_range */
	uint64_t seed;           /* PRNG seed for faults, loss and meter readings (0 = fixed 1) */
	int log_level;           /* messages above this level are not passed to log() */
	void (*log)(void *arg, int level, const char *msg);          /* may be NULL */
	void (*on_event)(void *arg, const struct evcs_sim_event *ev); /* may be NULL */
	void *arg;
};

/* Counters since evcs_sim_new (rtt_* since the last evcs_sim_rtt_reset). */
struct evcs_sim_stats {
	unsigned piles, connected, ready;     /* ready = logged in and has a billing model */
	unsigned charging;                    /* guns charging now */
	uint64_t connects, connect_failures, disconnects;
	uint64_t logins_ok, logins_refused;
	uint64_t frames_tx, frames_rx, bytes_tx, bytes_rx, frames_lost;
	uint64_t sessions_started, sessions_ended, records_resent, records_acked, faults;
	uint64_t hb_sent, hb_acked;
	uint64_t rtt_n;                       /* heartbeat -> 0x04 samples */
	uint32_t rtt_p50_us, rtt_p90_us, rtt_p99_us, rtt_max_us;
};

void evcs_sim_config_default(struct evcs_sim_config *c);
/* Copies c (and c->host). NULL on a bad config or an unresolvable host (logged). */
evcs_sim_t *evcs_sim_new(struct event_base *base, const struct evcs_sim_config *c);
void evcs_sim_free(evcs_sim_t *sim);
/* Add a pile (not yet connected). serial: 14 digits; guns 1..99. Returns its index,
 * -EINVAL on a bad argument, -EEXIST for a duplicate serial, -ENOMEM. */
int evcs_sim_add_pile(evcs_sim_t *sim, const char *serial, enum evcs_ykc_proto proto, unsigned guns);
/* Start connecting every pile not yet started (ramped by ramp_per_s). */
int evcs_sim_start(evcs_sim_t *sim);
/* Pile-initiated card start (0x31) on one gun now; -ENOENT unknown pile or gun,
 * -EAGAIN when the pile is not ready or the gun is busy. */
int evcs_sim_card_start(evcs_sim_t *sim, const char *serial, unsigned gun);
/* Drop every connection now (piles reconnect after reconnect_ms). For tests. */
void evcs_sim_drop_all(evcs_sim_t *sim);
/* Simulated unix time in ms. */
int64_t evcs_sim_now_ms(const evcs_sim_t *sim);
void evcs_sim_get_stats(const evcs_sim_t *sim, struct evcs_sim_stats *st);
void evcs_sim_rtt_reset(evcs_sim_t *sim);

/* Parse "1.2.3.4-1.2.3.9" or "1.2.3.4" into a host-order range; -EINVAL. */
int evcs_sim_parse_addr_range(const char *s, uint32_t *first, uint32_t *last);

#endif
