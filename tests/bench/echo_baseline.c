/*
 * tests/bench/echo_baseline.c: the floor a YKC server is measured against: a
 * plain libevent echo server (one loop, one bufferevent per connection, every
 * byte read is written back). Same machinery as evcsd's charger connections
 * minus framing, decoding, state and storage, so "evcsd frames/s / echo
 * frames/s" is the cost of the protocol work. Run on demand by the benchmarks:
 *   echo_baseline [PORT] [ADDR]     (PORT 0 = ephemeral; prints "port N")
 * SIGINT/SIGTERM exit cleanly.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_read(struct bufferevent *bev, void *arg)
{
	evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t fd, short what, void *arg) { event_base_loopexit(arg, NULL); }

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 0;
	const char *addr = argc > 2 ? argv[2] : "127.0.0.1";
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (!base || inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "echo_baseline: bad address %s\n", addr);
		return 2;
	}
	struct evconnlistener *lis = evconnlistener_new_bind(base, on_accept, base,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096, (struct sockaddr *)&sin, sizeof(sin));
	if (!lis) {
		perror("echo_baseline: listen");
		return 1;
	}
	struct sockaddr_in got;
	socklen_t gl = sizeof(got);
	getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&got, &gl);
	printf("port %u\n", ntohs(got.sin_port));
	fflush(stdout);
	struct event *si = evsignal_new(base, SIGINT, on_signal, base);
	struct event *st = evsignal_new(base, SIGTERM, on_signal, base);
	evsignal_add(si, NULL);
	evsignal_add(st, NULL);
	event_base_dispatch(base);
	event_free(si);
	event_free(st);
	evconnlistener_free(lis);
	event_base_free(base);
	return 0;
}
