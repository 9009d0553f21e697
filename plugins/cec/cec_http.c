/*
 * cec_http.c: libcurl multi + libevent glue (contract in cec_http.h).
 * Shape follows curl's documented "multi_socket" model: curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to call back (CURLMOPT_TIMERFUNCTION); we translate both
 * into libevent events and feed readiness back with curl_multi_socket_action.
 */
#include "cec_http.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xfer {
	struct cec_http *h;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;  /* request body (curl does not copy POSTFIELDS) */
	char *resp;
	size_t rlen, rcap;
	char err[CURL_ERROR_SIZE];
	cec_http_done done;
	void *ud;
	struct xfer *next, *prev;
};

struct sock {
	struct event *ev;
};

struct cec_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct event *reap; /* completion delivery in a fresh loop turn */
	long timeout_ms;
	struct xfer *xfers;
	size_t active;
};

static void check_done(struct cec_http *h);

static void xfer_free(struct xfer *x)
{
	struct cec_http *h = x->h;
	if (x->prev)
		x->prev->next = x->next;
	else if (h->xfers == x)
		h->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	curl_multi_remove_handle(h->multi, x->easy);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->body);
	free(x->resp);
	free(x);
	h->active--;
}

static size_t write_cb(char *ptr, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t add = size * n;
	if (x->rlen + add + 1 > x->rcap) {
		size_t cap = x->rcap ? x->rcap : 1024;
		while (cap < x->rlen + add + 1)
			cap *= 2;
		if (cap > (8u << 20))
			return 0; /* a partner reply over 8 MiB is not a CEC reply: abort */
		char *r = realloc(x->resp, cap);
		if (!r)
			return 0;
		x->resp = r;
		x->rcap = cap;
	}
	memcpy(x->resp + x->rlen, ptr, add);
	x->rlen += add;
	x->resp[x->rlen] = 0;
	return add;
}

static void event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cec_http *h = arg;
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;
	curl_multi_socket_action(h->multi, fd, action, &running);
	check_done(h);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cec_http *h = arg;
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct cec_http *h = userp;
	struct sock *sk = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (sk) {
			event_free(sk->ev);
			free(sk);
			curl_multi_assign(h->multi, s, NULL);
		}
		return 0;
	}
	short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
			     EV_PERSIST);
	if (!sk) {
		sk = calloc(1, sizeof *sk);
		if (!sk)
			return -1;
		curl_multi_assign(h->multi, s, sk);
	} else {
		event_del(sk->ev);
		event_free(sk->ev);
	}
	sk->ev = event_new(h->base, s, kind, event_cb, h);
	event_add(sk->ev, NULL);
	return 0;
}

static int mtimer_cb(CURLM *m, long ms, void *userp)
{
	struct cec_http *h = userp;
	if (ms < 0) {
		evtimer_del(h->timer);
		return 0;
	}
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(h->timer, &tv);
	return 0;
}

/* Completed transfers are handed to their callbacks from a zero timer, so a callback that
 * starts a new transfer never re-enters curl_multi_socket_action. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cec_http *h = arg;
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct xfer *x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (!x)
			continue;
		long code = 0;
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
		else if (!x->err[0])
			snprintf(x->err, sizeof x->err, "%s", curl_easy_strerror(msg->data.result));
		cec_http_done done = x->done;
		void *ud = x->ud;
		char *resp = x->resp;
		size_t rlen = x->rlen;
		char err[CURL_ERROR_SIZE];
		snprintf(err, sizeof err, "%s", x->err);
		x->resp = NULL;
		xfer_free(x);
		done(code, resp ? resp : "", rlen, err, ud);
		free(resp);
	}
}

static void check_done(struct cec_http *h)
{
	struct timeval zero = {0, 0};
	evtimer_add(h->reap, &zero);
}

cec_http_t *cec_http_new(struct event_base *base, long timeout_ms)
{
	struct cec_http *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->base = base;
	h->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, timer_cb, h);
	h->reap = evtimer_new(base, reap_cb, h);
	if (!h->multi || !h->timer || !h->reap) {
		cec_http_free(h);
		return NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, mtimer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void cec_http_free(cec_http_t *h)
{
	if (!h)
		return;
	while (h->xfers)
		xfer_free(h->xfers);
	if (h->multi)
		curl_multi_cleanup(h->multi); /* removes remaining sockets through sock_cb */
	if (h->timer)
		event_free(h->timer);
	if (h->reap)
		event_free(h->reap);
	free(h);
}

size_t cec_http_active(const cec_http_t *h) { return h ? h->active : 0; }

int cec_http_post(cec_http_t *h, const char *url, const char *bearer, const char *body, cec_http_done done,
		  void *ud)
{
	struct xfer *x = calloc(1, sizeof *x);
	if (!x)
		return -1;
	x->h = h;
	x->done = done;
	x->ud = ud;
	x->body = strdup(body ? body : "");
	x->easy = curl_easy_init();
	if (!x->body || !x->easy) {
		free(x->body);
		if (x->easy)
			curl_easy_cleanup(x->easy);
		free(x);
		return -1;
	}
	x->hdrs = curl_slist_append(NULL, "Content-Type: application/json;charset=utf-8");
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	if (bearer && *bearer) {
		char *a = malloc(strlen(bearer) + 32);
		if (a) {
			sprintf(a, "Authorization: Bearer %s", bearer);
			x->hdrs = curl_slist_append(x->hdrs, a);
			free(a);
		}
	}
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->timeout_ms < 5000 ? h->timeout_ms : 5000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	x->next = h->xfers;
	if (h->xfers)
		h->xfers->prev = x;
	h->xfers = x;
	h->active++;
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		xfer_free(x);
		return -1;
	}
	return 0;
}
