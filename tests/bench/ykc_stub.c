/*
 * tests/bench/ykc_stub.c: the scripted YKC server (contract in ykc_stub.h).
 */
#include "ykc_stub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct evcs_stub_conn {
	struct evcs_stub *stub;
	struct bufferevent *bev;
	struct evcs_stub_conn *prev, *next;
	char serial[15];
	uint16_t seq;
	bool closing;
};

struct evcs_stub {
	struct event_base *base;
	struct evconnlistener *lis;
	struct evcs_stub_opts o;
	char refuse[15];
	struct evcs_stub_conn *conns;
	struct evcs_stub_counts n;
	unsigned trade_counter;
	uint16_t port;
};

void evcs_stub_opts_default(struct evcs_stub_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->proto = EVCS_YKC_PROTO_16;
	o->ack_records = true;
	o->auth_cards = true;
	struct evcs_ykc_tariff *t = &o->tariff;
	memcpy(t->model, "0101", 5);
	t->sharp_elec_rate = 120000;  /* 1.20000 yuan/kWh */
	t->sharp_service_rate = 80000;
	t->peak_elec_rate = 100000;
	t->peak_service_rate = 60000;
	t->flat_elec_rate = 70000;
	t->flat_service_rate = 50000;
	t->valley_elec_rate = 30000;
	t->valley_service_rate = 40000;
	/* 00-08 valley, 08-10 peak, 10-12 sharp, 12-17 flat, 17-21 peak, 21-23 flat, 23-24 valley */
	for (int i = 0; i < 48; i++) {
		int h = i / 2;
		t->slots[i] = h < 8 ? 3 : h < 10 ? 1 : h < 12 ? 0 : h < 17 ? 2 : h < 21 ? 1 : h < 23 ? 2 : 3;
	}
}

static void conn_free(struct evcs_stub_conn *c)
{
	struct evcs_stub *s = c->stub;
	if (s->o.on_close)
		s->o.on_close(s->o.arg, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_free(c->bev);
	s->n.closed++;
	s->n.open--;
	free(c);
}

static int send_seq(struct evcs_stub_conn *c, const struct evcs_ykc_msg *m, const uint8_t seq[2])
{
	uint8_t out[EVCS_YKC_MAX_FRAME];
	int n = evcs_ykc_encode_frame(m, seq, EVCS_YKC_CRC_LE, out, sizeof(out), NULL);
	if (n < 0)
		return n;
	if (bufferevent_write(c->bev, out, (size_t)n) < 0)
		return -EIO;
	c->stub->n.frames_tx++;
	return 0;
}

int evcs_stub_send(struct evcs_stub_conn *c, const struct evcs_ykc_msg *m)
{
	uint8_t seq[2];
	evcs_ykc_seq_from_counter(c->seq++, seq);
	return send_seq(c, m, seq);
}

static void answer(struct evcs_stub_conn *c, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *m)
{
	struct evcs_stub *s = c->stub;
	struct evcs_ykc_msg a;
	memset(&a, 0, sizeof(a));
	switch (f->type) {
	case 0x01: {
		bool refuse = s->refuse[0] && strcmp(m->u.login.pile, s->refuse) == 0;
		a.type = 0x02;
		memcpy(a.u.pile_result.pile, m->u.login.pile, 15);
		a.u.pile_result.result = refuse ? 1 : 0;
		send_seq(c, &a, f->seq);
		if (refuse) {
			c->closing = true; /* closed once the answer is written */
		} else {
			memcpy(c->serial, m->u.login.pile, 15);
			s->n.logins++;
		}
		break;
	}
	case 0x03:
		a.type = 0x04;
		memcpy(a.u.heartbeat_reply.pile, m->u.heartbeat.pile, 15);
		memcpy(a.u.heartbeat_reply.gun, m->u.heartbeat.gun, 3);
		send_seq(c, &a, f->seq);
		break;
	case 0x05:
		a.type = 0x06;
		a.u.model = m->u.model;
		a.u.model.result = strcmp(m->u.model.model, s->o.tariff.model) == 0 ? 0 : 1;
		send_seq(c, &a, f->seq);
		break;
	case 0x09:
		a.type = 0x0A;
		a.u.tariff = s->o.tariff;
		memcpy(a.u.tariff.pile, m->u.model.pile, 15);
		send_seq(c, &a, f->seq);
		break;
	case 0x31: {
		a.type = 0x32;
		struct evcs_ykc_start_auth *r = &a.u.start_auth;
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		evcs_ykc_trade_no(r->trade_no, m->u.start_request.pile, m->u.start_request.gun, &tm,
				  s->trade_counter++ % 10000);
		memcpy(r->pile, m->u.start_request.pile, 15);
		memcpy(r->gun, m->u.start_request.gun, 3);
		memcpy(r->logical_card, "0000000000000001", 17);
		r->balance_yuan = 100000;
		r->auth_ok = s->o.auth_cards ? 1 : 0;
		r->fail_reason = s->o.auth_cards ? 0 : 1;
		send_seq(c, &a, f->seq);
		break;
	}
	case 0x3B:
		if (s->o.ack_records) {
			a.type = 0x40;
			memcpy(a.u.record_ack.trade_no, m->u.record.trade_no, 33);
			send_seq(c, &a, f->seq);
		}
		break;
	default:
		break;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct evcs_stub_conn *c = arg;
	struct evcs_stub *s = c->stub;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)len);
	struct evcs_ykc_scan sc;
	evcs_ykc_scan_init(&sc, buf, len, 0);
	struct evcs_ykc_frame f;
	while (!c->closing && evcs_ykc_scan_next(&sc, &f)) {
		struct evcs_ykc_msg m;
		enum evcs_ykc_status st = evcs_ykc_decode_frame(&f, s->o.proto, &m, NULL);
		s->n.frames_rx++;
		s->n.by_type[f.type]++;
		if (st != EVCS_YKC_OK && st != EVCS_YKC_BODY_LONG)
			continue;
		/* like the platform: nothing but a login counts before the login */
		if (!c->serial[0] && f.type != 0x01)
			continue;
		answer(c, &f, &m);
		if (s->o.on_frame && !c->closing)
			s->o.on_frame(s->o.arg, c, &f, &m);
	}
	evbuffer_drain(in, c->closing ? len : sc.pos);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct evcs_stub_conn *c = arg;
	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct evcs_stub *s = arg;
	struct evcs_stub_conn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c || !bev) {
		free(c);
		if (bev)
			bufferevent_free(bev);
		else
			evutil_closesocket(fd);
		return;
	}
	c->stub = s;
	c->bev = bev;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n.accepted++;
	s->n.open++;
	bufferevent_setcb(bev, on_read, on_write, on_event, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

struct evcs_stub *evcs_stub_new(struct event_base *base, const char *addr, uint16_t port,
				const struct evcs_stub_opts *o)
{
	struct evcs_stub *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->o = *o;
	if (o->refuse_serial)
		snprintf(s->refuse, sizeof(s->refuse), "%s", o->refuse_serial);
	s->o.refuse_serial = NULL;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		free(s);
		errno = EINVAL;
		return NULL;
	}
	s->lis = evconnlistener_new_bind(base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
					 (struct sockaddr *)&sin, sizeof(sin));
	if (!s->lis) {
		free(s);
		return NULL;
	}
	struct sockaddr_in got;
	socklen_t gl = sizeof(got);
	getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&got, &gl);
	s->port = ntohs(got.sin_port);
	return s;
}

void evcs_stub_free(struct evcs_stub *s)
{
	if (!s)
		return;
	s->o.on_close = NULL;
	while (s->conns)
		conn_free(s->conns);
	evconnlistener_free(s->lis);
	free(s);
}

uint16_t evcs_stub_port(const struct evcs_stub *s) { return s->port; }
struct evcs_stub_opts *evcs_stub_options(struct evcs_stub *s) { return &s->o; }
const struct evcs_stub_counts *evcs_stub_counts(const struct evcs_stub *s) { return &s->n; }
const char *evcs_stub_conn_serial(const struct evcs_stub_conn *c) { return c->serial; }

struct evcs_stub_conn *evcs_stub_find(struct evcs_stub *s, const char *serial)
{
	for (struct evcs_stub_conn *c = s->conns; c; c = c->next)
		if (!c->closing && strcmp(c->serial, serial) == 0)
			return c;
	return NULL;
}

void evcs_stub_close(struct evcs_stub_conn *c)
{
	/* deferred: callers are usually inside this connection's read callback */
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}
