/*
 * tests/bench/ykc_stub_server.c: the scripted YKC stub (ykc_stub.h) as a
 * stand-alone server, for benchmarking the simulator and the network path
 * while the ykc plugin is not available. Not a platform: every serial logs in.
 *   ykc-stub-server [PORT] [ADDR]   (PORT 0 = ephemeral; prints "port N")
 * SIGINT/SIGTERM exit and print the frame counts.
 */
#include "ykc_stub.h"

#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void on_signal(evutil_socket_t fd, short what, void *arg) { event_base_loopexit(arg, NULL); }

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 0;
	const char *addr = argc > 2 ? argv[2] : "127.0.0.1";
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct evcs_stub_opts o;
	evcs_stub_opts_default(&o);
	struct evcs_stub *s = base ? evcs_stub_new(base, addr, (uint16_t)port, &o) : NULL;
	if (!s) {
		perror("ykc-stub-server: listen");
		return 1;
	}
	printf("port %u\n", evcs_stub_port(s));
	fflush(stdout);
	struct event *si = evsignal_new(base, SIGINT, on_signal, base);
	struct event *st = evsignal_new(base, SIGTERM, on_signal, base);
	evsignal_add(si, NULL);
	evsignal_add(st, NULL);
	event_base_dispatch(base);
	const struct evcs_stub_counts *n = evcs_stub_counts(s);
	fprintf(stderr, "ykc-stub-server: accepted %" PRIu64 ", logins %" PRIu64 ", frames rx %" PRIu64 " tx %" PRIu64 "\n",
		n->accepted, n->logins, n->frames_rx, n->frames_tx);
	event_free(si);
	event_free(st);
	evcs_stub_free(s);
	event_base_free(base);
	return 0;
}
