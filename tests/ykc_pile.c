/* tests/ykc_pile.c: the scripted test charger; see ykc_pile.h. */
#include "ykc_pile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

long long ykc_pile_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ykc_pile_connect(struct ykc_pile *p, int port, const char *pile, enum evcs_ykc_crc_order crc,
		     void (*pump)(void *), void *ud)
{
	return ykc_pile_connect_from(p, NULL, port, pile, crc, pump, ud);
}

int ykc_pile_connect_from(struct ykc_pile *p, const char *src, int port, const char *pile,
			  enum evcs_ykc_crc_order crc, void (*pump)(void *), void *ud)
{
	memset(p, 0, sizeof *p);
	p->fd = -1;
	snprintf(p->pile, sizeof p->pile, "%s", pile);
	p->crc = crc;
	p->pump = pump;
	p->pump_ud = ud;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (src) {
		struct sockaddr_in la = {.sin_family = AF_INET};
		if (inet_pton(AF_INET, src, &la.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&la, sizeof la) < 0) {
			fprintf(stderr, "ykc_pile: bind to %s: %s\n", src, strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, "ykc_pile: connect to %d: %s\n", port, strerror(errno));
		close(fd);
		return -1;
	}
	p->fd = fd;
	/* let the server accept before the first frame */
	if (p->pump)
		p->pump(p->pump_ud);
	return 0;
}

void ykc_pile_close(struct ykc_pile *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

int ykc_pile_send_raw(struct ykc_pile *p, const void *b, size_t n)
{
	const uint8_t *c = b;
	while (n) {
		ssize_t w = send(p->fd, c, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	p->last_tx_ms = ykc_pile_now_ms();
	return 0;
}

int ykc_pile_build(struct ykc_pile *p, const struct evcs_ykc_msg *m, const uint8_t seq[2],
		   uint8_t *out, size_t cap)
{
	uint8_t sq[2];
	if (seq)
		memcpy(sq, seq, 2);
	else
		evcs_ykc_seq_from_counter(p->seq++, sq);
	const char *bad = NULL;
	int n = evcs_ykc_encode_frame(m, sq, p->crc, out, cap, &bad);
	if (n < 0)
		fprintf(stderr, "ykc_pile: encode 0x%02X failed at %s\n", m->type, bad ? bad : "?");
	return n;
}

int ykc_pile_send(struct ykc_pile *p, const struct evcs_ykc_msg *m, const uint8_t seq[2])
{
	uint8_t buf[EVCS_YKC_MAX_FRAME];
	int n = ykc_pile_build(p, m, seq, buf, sizeof buf);
	if (n < 0)
		return -1;
	return ykc_pile_send_raw(p, buf, (size_t)n) < 0 ? -1 : n;
}

int ykc_pile_send_enc(struct ykc_pile *p, const struct evcs_ykc_msg *m, const uint8_t seq[2], uint8_t enc)
{
	uint8_t body[EVCS_YKC_MAX_BODY], buf[EVCS_YKC_MAX_FRAME], sq[2];
	const char *bad = NULL;
	int n = evcs_ykc_encode_body(m, body, sizeof body, &bad);
	if (n < 0) {
		fprintf(stderr, "ykc_pile: encode 0x%02X failed at %s\n", m->type, bad ? bad : "?");
		return -1;
	}
	if (seq)
		memcpy(sq, seq, 2);
	else
		evcs_ykc_seq_from_counter(p->seq++, sq);
	int f = evcs_ykc_frame_build(buf, sizeof buf, sq, enc, m->type, body, (size_t)n, p->crc);
	if (f < 0)
		return -1;
	return ykc_pile_send_raw(p, buf, (size_t)f) < 0 ? -1 : f;
}

/* Read what is available and split it into queued frames. */
static void pile_read(struct ykc_pile *p)
{
	if (p->fd < 0 || p->eof)
		return;
	for (;;) {
		struct pollfd pf = {p->fd, POLLIN, 0};
		if (poll(&pf, 1, 0) <= 0)
			return;
		if (p->inlen == sizeof p->in)
			p->inlen = 0; /* garbage flood: start over */
		ssize_t r = recv(p->fd, p->in + p->inlen, sizeof p->in - p->inlen, 0);
		if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
			p->eof = 1;
			return;
		}
		if (r < 0)
			continue;
		p->inlen += (size_t)r;
		struct evcs_ykc_scan sc;
		struct evcs_ykc_frame f;
		evcs_ykc_scan_init(&sc, p->in, p->inlen, 0);
		while (evcs_ykc_scan_next(&sc, &f)) {
			if (p->nq == YKC_PILE_QUEUE) {
				memmove(&p->q[0], &p->q[1], (YKC_PILE_QUEUE - 1) * sizeof p->q[0]);
				p->nq--;
			}
			struct ykc_rx *q = &p->q[p->nq++];
			q->type = f.type;
			memcpy(q->seq, f.seq, 2);
			q->crc = f.crc_order;
			q->size = f.size;
			memcpy(q->raw, f.raw, f.size);
		}
		memmove(p->in, p->in + sc.pos, p->inlen - sc.pos);
		p->inlen -= sc.pos;
	}
}

static void maybe_heartbeat(struct ykc_pile *p)
{
	if (!p->hb_ms || p->fd < 0 || p->eof || ykc_pile_now_ms() - p->last_tx_ms < p->hb_ms)
		return;
	struct evcs_ykc_msg m;
	ykc_msg_heartbeat(p, &m, 1);
	ykc_pile_send(p, &m, NULL);
}

static int take(struct ykc_pile *p, uint8_t type, struct evcs_ykc_msg *m, struct ykc_rx *rx)
{
	for (size_t i = 0; i < p->nq; i++) {
		if (type && p->q[i].type != type)
			continue;
		struct ykc_rx got = p->q[i];
		memmove(&p->q[i], &p->q[i + 1], (p->nq - i - 1) * sizeof p->q[0]);
		p->nq--;
		if (m)
			evcs_ykc_decode_body(got.type, got.raw + 6, got.size - 8, EVCS_YKC_PROTO_16, m, NULL);
		if (rx)
			*rx = got;
		return 1;
	}
	return 0;
}

int ykc_pile_wait(struct ykc_pile *p, uint8_t type, int timeout_ms, struct evcs_ykc_msg *m,
		  struct ykc_rx *rx)
{
	long long end = ykc_pile_now_ms() + timeout_ms;
	for (;;) {
		pile_read(p);
		if (take(p, type, m, rx))
			return 0;
		if (p->eof || ykc_pile_now_ms() >= end)
			return -1;
		maybe_heartbeat(p);
		if (p->pump)
			p->pump(p->pump_ud);
		else
			usleep(2000);
	}
}

int ykc_pile_is_open(struct ykc_pile *p)
{
	pile_read(p);
	return p->fd >= 0 && !p->eof;
}

void ykc_pile_tick(struct ykc_pile *p)
{
	pile_read(p);
	if (!p->hb_ms)
		return;
	while (take(p, 0x04, NULL, NULL))
		;
	maybe_heartbeat(p);
}

int ykc_pile_wait_closed(struct ykc_pile *p, int timeout_ms)
{
	long long end = ykc_pile_now_ms() + timeout_ms;
	while (!p->eof && ykc_pile_now_ms() < end) {
		pile_read(p);
		if (p->eof)
			break;
		if (p->pump)
			p->pump(p->pump_ud);
		else
			usleep(2000);
	}
	return p->eof;
}

void ykc_pile_flush(struct ykc_pile *p, uint8_t type)
{
	pile_read(p);
	while (take(p, type, NULL, NULL))
		;
}

void ykc_msg_login(struct ykc_pile *p, struct evcs_ykc_msg *m, int guns, int version)
{
	memset(m, 0, sizeof *m);
	m->type = 0x01;
	memcpy(m->u.login.pile, p->pile, 15);
	m->u.login.pile_type = 0;
	m->u.login.gun_count = (uint8_t)guns;
	m->u.login.protocol_version = (uint8_t)version;
	snprintf(m->u.login.program_version, sizeof m->u.login.program_version, "T\"1.0\\");
	m->u.login.network = 1;
	snprintf(m->u.login.sim, sizeof m->u.login.sim, "898604D11722D0348606");
	m->u.login.carrier = 4;
}

void ykc_msg_heartbeat(struct ykc_pile *p, struct evcs_ykc_msg *m, int gun)
{
	memset(m, 0, sizeof *m);
	m->type = 0x03;
	memcpy(m->u.heartbeat.pile, p->pile, 15);
	m->u.heartbeat.gun[0] = (char)('0' + (gun / 10) % 10);
	m->u.heartbeat.gun[1] = (char)('0' + gun % 10);
}

void ykc_msg_realtime(struct ykc_pile *p, struct evcs_ykc_msg *m, int gun, const char *trade,
		      int status, uint32_t kwh, uint32_t amount4)
{
	memset(m, 0, sizeof *m);
	m->type = 0x13;
	struct evcs_ykc_realtime *r = &m->u.realtime;
	snprintf(r->trade_no, sizeof r->trade_no, "%s", trade);
	memcpy(r->pile, p->pile, 15);
	r->gun[0] = (char)('0' + (gun / 10) % 10);
	r->gun[1] = (char)('0' + gun % 10);
	r->status = (uint8_t)status;
	r->gun_returned = status == 3 ? 0 : 1;
	r->plugged = status == 3 ? 1 : 0;
	r->voltage_v = status == 3 ? 3732 : 0;
	r->current_a = status == 3 ? 1012 : 0;
	r->gun_temp_c = 30;
	r->soc = status == 3 ? 55 : 0;
	r->batt_max_temp_c = 28;
	r->charged_min = 5;
	r->kwh = kwh;
	r->loss_kwh = kwh;
	r->amount_yuan = amount4;
}
