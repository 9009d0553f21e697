/* worker.c: see worker.h. Completions go back to the loop through a mutex-guarded
 * list and one event made active with event_active() (safe from other threads
 * once evthread_use_pthreads() was called, which the daemon does first). */
#include "worker.h"

#include "log.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>

struct job {
	void (*work)(void *);
	void (*done)(void *);
	void *ud;
	struct job *next;
};

struct evcs_workers {
	struct event_base *base;
	pthread_t *threads;
	int nthreads;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *qhead, *qtail;
	size_t depth, max;
	struct job *dhead, *dtail; /* done, waiting for the loop */
	struct event *done_ev;
	int stop;
};

static void *thread_main(void *arg)
{
	evcs_workers_t *w = arg;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (!w->qhead && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->qhead && w->stop) {
			pthread_mutex_unlock(&w->mu);
			return NULL;
		}
		struct job *j = w->qhead;
		w->qhead = j->next;
		if (!w->qhead)
			w->qtail = NULL;
		w->depth--;
		pthread_mutex_unlock(&w->mu);
		if (j->work)
			j->work(j->ud);
		j->next = NULL;
		pthread_mutex_lock(&w->mu);
		if (w->dtail)
			w->dtail->next = j;
		else
			w->dhead = j;
		w->dtail = j;
		int stopping = w->stop;
		pthread_mutex_unlock(&w->mu);
		if (!stopping)
			event_active(w->done_ev, EV_READ, 0);
	}
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	evcs_workers_t *w = arg;
	pthread_mutex_lock(&w->mu);
	struct job *j = w->dhead;
	w->dhead = w->dtail = NULL;
	pthread_mutex_unlock(&w->mu);
	while (j) {
		struct job *n = j->next;
		if (j->done)
			j->done(j->ud);
		free(j);
		j = n;
	}
}

evcs_workers_t *evcs_workers_new(struct event_base *base, int nthreads, size_t queue_max)
{
	evcs_workers_t *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->base = base;
	w->max = queue_max ? queue_max : 10000;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->done_ev = event_new(base, -1, 0, done_cb, w);
	w->threads = calloc((size_t)(nthreads > 0 ? nthreads : 1), sizeof *w->threads);
	if (!w->done_ev || !w->threads)
		goto fail;
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&w->threads[i], NULL, thread_main, w) != 0) {
			evcs_err("worker", "cannot start worker thread %d", i);
			goto fail;
		}
		w->nthreads++;
	}
	return w;
fail:
	evcs_workers_free(w);
	return NULL;
}

void evcs_workers_free(evcs_workers_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	for (struct job *j = w->dhead, *n; j; j = n) {
		n = j->next;
		free(j);
	}
	if (w->done_ev)
		event_free(w->done_ev);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->threads);
	free(w);
}

int evcs_workers_submit(evcs_workers_t *w, void (*work)(void *), void (*done)(void *), void *ud)
{
	if (!w || (!work && !done))
		return -2;
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return -9;
	j->work = work;
	j->done = done;
	j->ud = ud;
	pthread_mutex_lock(&w->mu);
	if (w->depth >= w->max || w->stop) {
		pthread_mutex_unlock(&w->mu);
		free(j);
		return -6; /* EVCS_EBUSY */
	}
	if (w->qtail)
		w->qtail->next = j;
	else
		w->qhead = j;
	w->qtail = j;
	w->depth++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

size_t evcs_workers_depth(evcs_workers_t *w)
{
	pthread_mutex_lock(&w->mu);
	size_t d = w->depth;
	pthread_mutex_unlock(&w->mu);
	return d;
}
