/*
 * worker.h: a small pool of threads for blocking work (file syncs, DNS, CPU-heavy
 * jobs). work() runs on a worker thread; done() runs afterwards on the loop
 * thread. Jobs are FIFO; the queue is bounded (EVCS_EBUSY when full).
 * Shutdown (evcs_workers_free) finishes queued jobs' work() but runs no done().
 */
#ifndef EVCS_WORKER_H
#define EVCS_WORKER_H

#include <stddef.h>

struct event_base;
typedef struct evcs_workers evcs_workers_t;

evcs_workers_t *evcs_workers_new(struct event_base *base, int nthreads, size_t queue_max);
void evcs_workers_free(evcs_workers_t *w);
int evcs_workers_submit(evcs_workers_t *w, void (*work)(void *), void (*done)(void *), void *ud);
size_t evcs_workers_depth(evcs_workers_t *w);


#endif
