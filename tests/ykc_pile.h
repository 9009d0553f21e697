/*
 * tests/ykc_pile.h: a scripted YKC charger for tests, over a real TCP socket.
 *
 * Blocking socket in the test thread. Waiting for a frame calls a `pump` callback between
 * polls so the test can run the server's event loop in the same thread (deterministic, no
 * locks). Frames the test is not waiting for are queued, so "wait for 0x02" does not lose
 * the 0x56 that follows. Optionally sends a heartbeat for gun 1 every hb_ms while waiting
 * (keeps a short offline timeout from firing during slow steps).
 * Errors: functions return 0 / a frame size on success and -1 on failure (message on stderr).
 */
#ifndef EVCS_TEST_YKC_PILE_H
#define EVCS_TEST_YKC_PILE_H

#include "codec.h"

#include <stddef.h>
#include <stdint.h>

#define YKC_PILE_QUEUE 64

struct ykc_rx {
	uint8_t type;
	uint8_t seq[2];
	enum evcs_ykc_crc_order crc;
	size_t size;
	uint8_t raw[EVCS_YKC_MAX_FRAME];
};

struct ykc_pile {
	int fd;
	char pile[15];
	enum evcs_ykc_crc_order crc;
	uint16_t seq;
	int eof;
	unsigned hb_ms;           /* 0 = no automatic heartbeat */
	long long last_tx_ms;
	void (*pump)(void *ud);   /* runs the server while the pile waits */
	void *pump_ud;
	uint8_t in[4096];
	size_t inlen;
	struct ykc_rx q[YKC_PILE_QUEUE];
	size_t nq;
};

long long ykc_pile_now_ms(void);
int ykc_pile_connect(struct ykc_pile *p, int port, const char *pile, enum evcs_ykc_crc_order crc,
		     void (*pump)(void *), void *ud);
/* As ykc_pile_connect, from the loopback source address src ("127.0.0.2"; NULL = any), so a
 * test can play several remote hosts against per-address limits. */
int ykc_pile_connect_from(struct ykc_pile *p, const char *src, int port, const char *pile,
			  enum evcs_ykc_crc_order crc, void (*pump)(void *), void *ud);
/* 1 while the server has not closed the connection (reads what arrived; never pumps). */
int ykc_pile_is_open(struct ykc_pile *p);
void ykc_pile_close(struct ykc_pile *p);
int ykc_pile_send_raw(struct ykc_pile *p, const void *b, size_t n);
/* Encode and send; seq NULL = the pile's own counter (little-endian); out (may be NULL) gets the
 * frame bytes and *outlen its size. Returns the frame size. */
int ykc_pile_build(struct ykc_pile *p, const struct evcs_ykc_msg *m, const uint8_t seq[2],
		   uint8_t *out, size_t cap);
int ykc_pile_send(struct ykc_pile *p, const struct evcs_ykc_msg *m, const uint8_t seq[2]);
/* As ykc_pile_send with the encryption flag byte set to enc (§2.3). */
int ykc_pile_send_enc(struct ykc_pile *p, const struct evcs_ykc_msg *m, const uint8_t seq[2], uint8_t enc);
/* Next frame of `type` (0 = any) within timeout_ms, decoded into m (may be NULL) with the
 * receive details in rx (may be NULL). Returns 0, or -1 on timeout / connection closed. */
int ykc_pile_wait(struct ykc_pile *p, uint8_t type, int timeout_ms, struct evcs_ykc_msg *m,
		  struct ykc_rx *rx);
/* 1 when the server closed the connection within timeout_ms (frames received meanwhile are
 * queued), else 0. */
int ykc_pile_wait_closed(struct ykc_pile *p, int timeout_ms);
/* Read what arrived and, when hb_ms is set, drop queued 0x04 answers and send a heartbeat if
 * one is due (for piles kept alive in the background). */
void ykc_pile_tick(struct ykc_pile *p);
/* Drop queued frames of `type` (0 = all). */
void ykc_pile_flush(struct ykc_pile *p, uint8_t type);

/* Message builders (zeroed, pile number filled in). */
void ykc_msg_login(struct ykc_pile *p, struct evcs_ykc_msg *m, int guns, int version);
void ykc_msg_heartbeat(struct ykc_pile *p, struct evcs_ykc_msg *m, int gun);
void ykc_msg_realtime(struct ykc_pile *p, struct evcs_ykc_msg *m, int gun, const char *trade,
		      int status, uint32_t kwh, uint32_t amount4);

#endif
