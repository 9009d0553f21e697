/*
 * tests/testloop.h: running work on an in-process core's event loop from the test's thread
 * (tests/testloop.c; libevent with pthread locking, evthread_use_pthreads() before the base is
 * made).
 *   test_run_on_loop() posts fn(arg) to base (its loop runs on another thread) and blocks until
 *   fn has returned there. Never call it from the loop thread itself.
 */
#ifndef EVCS_TESTLOOP_H
#define EVCS_TESTLOOP_H

#include <event2/event.h>

void test_run_on_loop(struct event_base *base, void (*fn)(void *), void *arg);

#endif
