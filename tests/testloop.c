/*
 * tests/testloop.c: post work to a core's loop thread and wait for it (contract in
 * tests/testloop.h).
 */
#include "testloop.h"

#include <pthread.h>

struct loop_call {
	void (*fn)(void *);
	void *arg;
	int done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void loop_call_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_call *lc = arg;
	(void)fd;
	(void)what;
	lc->fn(lc->arg);
	pthread_mutex_lock(&lc->mu);
	lc->done = 1;
	pthread_cond_signal(&lc->cv);
	pthread_mutex_unlock(&lc->mu);
}

void test_run_on_loop(struct event_base *base, void (*fn)(void *), void *arg)
{
	struct loop_call lc = {fn, arg, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
	struct timeval zero = {0, 0};
	event_base_once(base, -1, EV_TIMEOUT, loop_call_cb, &lc, &zero);
	pthread_mutex_lock(&lc.mu);
	while (!lc.done)
		pthread_cond_wait(&lc.cv, &lc.mu);
	pthread_mutex_unlock(&lc.mu);
}
