/*
 * outbox.c: our client side of a partnership: the access token the partner issues to us
 * (query_token, renewed before expiry and on Ret 4002) and the durable push outbox.
 *
 * Durability argument: an entry is sendable only after cec.outbox.put has committed it, so a
 * push the partner may have seen always has a row; the row is marked done only after the
 * partner's reply says so (evcs_cec_parse_push_reply r.done). A crash between the partner's
 * acknowledgement and our `done` write re-sends the entry after restart with the same body
 * (same StartChargeSeq): the partner's idempotency absorbs it (§8).
 * Ordering: entries live in production order per partner; an entry is sent only when no
 * earlier entry of the same lane (connector) is still undelivered, so each connector's pushes
 * arrive in order. Puts are serialised (one in flight) so DB ids follow production order too,
 * which restart recovery relies on. Retry: exponential backoff from retry_base to retry_max
 * (default 1 s .. 5 min), forever: the partner decides when a push is done.
 */
#include "cec_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OB_PERSISTING, OB_READY, OB_INFLIGHT } ob_state_t;

typedef struct ob_entry {
	cec_ctx_t *c;
	cec_partner_rt_t *pt;
	int64_t id, tenant_id;
	cec_iface_t iface;
	char lane[CEC_ID_MAX + 1];
	char idem[129];
	json_t *data; /* decimals still as cec markers (survive json_dumps/loads) */
	ob_state_t state;
	unsigned attempts;
	int64_t next_ms;
	bool token_retry; /* already re-sent once after a 4002 */
	struct ob_entry *next, *prev; /* partner queue */
	struct ob_entry *pnext;       /* put queue */
} ob_entry_t;

#define LOG(c, lvl, t, ...) (c)->api->log((c)->p, (lvl), (t), NULL, __VA_ARGS__)

static void send_entry(cec_ctx_t *c, ob_entry_t *e);
static void fetch_token(cec_ctx_t *c, cec_partner_rt_t *pt);
static void put_next(cec_ctx_t *c);

cec_partner_rt_t *cec_partner_by_id(cec_ctx_t *c, int64_t id)
{
	for (cec_partner_rt_t *p = c->partners; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

static void entry_unlink_free(ob_entry_t *e)
{
	cec_partner_rt_t *pt = e->pt;
	if (e->prev)
		e->prev->next = e->next;
	else
		pt->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		pt->tail = e->prev;
	pt->queued--;
	e->c->api->metric_add(e->c->m_outbox, -1);
	json_decref(e->data);
	free(e);
}

static void entry_append(cec_partner_rt_t *pt, ob_entry_t *e)
{
	e->prev = pt->tail;
	e->next = NULL;
	if (pt->tail)
		pt->tail->next = e;
	else
		pt->head = e;
	pt->tail = e;
	pt->queued++;
	e->c->api->metric_add(e->c->m_outbox, 1);
}

static int64_t backoff_ms(cec_ctx_t *c, unsigned attempts)
{
	int64_t d = c->retry_base_ms;
	for (unsigned i = 1; i < attempts && d < c->retry_max_ms; i++)
		d *= 2;
	return d < c->retry_max_ms ? d : c->retry_max_ms;
}

static void store_ignore(int status, const char *result, void *ud)
{
	cec_ctx_t *c = ud;
	if (status != EVCS_OK)
		LOG(c, EVCS_LOG_WARNING, 0, "outbox state update failed: %s %s", c->api->status_name(status),
		    result ? result : "");
}

/* ---- persistence queue ---- */

static void put_done(int status, const char *result, void *ud)
{
	cec_ctx_t *c = ud;
	ob_entry_t *e = c->put_head;
	c->put_busy = false;
	if (!e)
		return;
	if (status != EVCS_OK) {
		/* Keep it at the head and try again: nothing is sent before it is durable. */
		LOG(c, EVCS_LOG_WARNING, e->tenant_id, "outbox put failed (%s), retrying: %s", c->api->status_name(status),
		    result ? result : "");
		e->next_ms = cec_now_ms() + 1000;
		cec_outbox_kick(c);
		return;
	}
	c->put_head = e->pnext;
	if (!c->put_head)
		c->put_tail = NULL;
	json_t *r = json_loads(result ? result : "{}", 0, NULL);
	e->id = json_integer_value(json_object_get(r, "id"));
	const char *state = json_string_value(json_object_get(r, "state"));
	bool was_done = state && strcmp(state, "done") == 0;
	bool dup = json_is_true(json_object_get(r, "duplicate"));
	LOG(c, EVCS_LOG_DEBUG, e->tenant_id, "outbox put %s %s: %s", evcs_cec_iface_name(e->iface), e->idem, result);
	json_decref(r);
	if (dup && was_done) {
		entry_unlink_free(e); /* announced before and already delivered */
	} else if (dup && cec_partner_by_id(c, e->pt->id) && e->id) {
		/* Already queued (loaded at start-up or produced twice): keep one copy. */
		bool seen = false;
		for (ob_entry_t *o = e->pt->head; o; o = o->next)
			if (o != e && o->id == e->id)
				seen = true;
		if (seen)
			entry_unlink_free(e);
		else
			e->state = OB_READY;
	} else
		e->state = OB_READY;
	put_next(c);
	cec_outbox_kick(c);
}

static void put_next(cec_ctx_t *c)
{
	ob_entry_t *e = c->put_head;
	if (c->put_busy || !e || c->stopping)
		return;
	if (e->next_ms > cec_now_ms())
		return; /* retry timer */
	json_t *a = json_pack("{s:I, s:I, s:s, s:s, s:{s:s, s:O}}", "tenant_id", (json_int_t)e->tenant_id, "partner_id",
			      (json_int_t)e->pt->id, "kind", evcs_cec_iface_name(e->iface), "idem_key", e->idem,
			      "payload", "lane", e->lane, "data", e->data);
	char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!s)
		return;
	c->put_busy = true;
	if (cec_store(c, "cec.outbox.put", s, put_done, c) != EVCS_OK) {
		c->put_busy = false;
		e->next_ms = cec_now_ms() + 1000;
	}
	free(s);
}

void cec_outbox_push(cec_ctx_t *c, cec_partner_rt_t *pt, cec_iface_t iface, const char *lane, const char *idem_key,
		     json_t *data)
{
	if (!data)
		return;
	ob_entry_t *e = calloc(1, sizeof *e);
	if (!e) {
		json_decref(data);
		LOG(c, EVCS_LOG_ERR, pt->tenant_id, "out of memory: push %s lost", evcs_cec_iface_name(iface));
		return;
	}
	e->c = c;
	e->pt = pt;
	e->tenant_id = pt->tenant_id;
	e->iface = iface;
	snprintf(e->lane, sizeof e->lane, "%s", lane ? lane : "");
	snprintf(e->idem, sizeof e->idem, "%s", idem_key);
	e->data = data;
	e->state = OB_PERSISTING;
	entry_append(pt, e);
	if (c->put_tail)
		c->put_tail->pnext = e;
	else
		c->put_head = e;
	c->put_tail = e;
	put_next(c);
}

/* ---- restart recovery ---- */

static void load_done(int status, const char *result, void *ud)
{
	cec_ctx_t *c = ud;
	if (status != EVCS_OK) {
		LOG(c, EVCS_LOG_ERR, 0, "cannot load the outbox (%s); retrying at the next refresh",
		    c->api->status_name(status));
		return;
	}
	json_t *r = json_loads(result, 0, NULL);
	json_t *rows = json_object_get(r, "rows"), *row;
	size_t i, n = 0;
	int64_t last = 0;
	json_array_foreach(rows, i, row)
	{
		int64_t id = json_integer_value(json_object_get(row, "id"));
		last = id;
		cec_partner_rt_t *pt = cec_partner_by_id(c, json_integer_value(json_object_get(row, "partner_id")));
		int iface = evcs_cec_iface_from_name(json_string_value(json_object_get(row, "kind")));
		json_t *payload = json_object_get(row, "payload");
		json_t *data = json_object_get(payload, "data");
		if (!pt || iface < 0 || !json_is_object(data))
			continue;
		bool seen = false;
		for (ob_entry_t *o = pt->head; o; o = o->next)
			if (o->id == id)
				seen = true;
		if (seen)
			continue;
		ob_entry_t *e = calloc(1, sizeof *e);
		if (!e)
			break;
		e->c = c;
		e->pt = pt;
		e->id = id;
		e->tenant_id = pt->tenant_id;
		e->iface = (cec_iface_t)iface;
		snprintf(e->lane, sizeof e->lane, "%s", json_string_value(json_object_get(payload, "lane")) ?: "");
		snprintf(e->idem, sizeof e->idem, "%s", json_string_value(json_object_get(row, "idem_key")) ?: "");
		e->data = json_incref(data);
		e->attempts = (unsigned)json_integer_value(json_object_get(row, "attempts"));
		e->next_ms = json_integer_value(json_object_get(row, "next_attempt_ms"));
		e->state = OB_READY;
		/* Loaded rows are older than anything produced since start-up: put them first. */
		ob_entry_t *at = pt->head;
		while (at && at->id && at->id < id && at->state != OB_PERSISTING)
			at = at->next;
		if (!at)
			entry_append(pt, e);
		else {
			e->next = at;
			e->prev = at->prev;
			if (at->prev)
				at->prev->next = e;
			else
				pt->head = e;
			at->prev = e;
			pt->queued++;
			c->api->metric_add(c->m_outbox, 1);
		}
		n++;
	}
	size_t total = json_array_size(rows);
	json_decref(r);
	if (n)
		LOG(c, EVCS_LOG_NOTICE, 0, "outbox: %zu undelivered push(es) resumed", n);
	if (total == 1000) {
		char a[64];
		snprintf(a, sizeof a, "{\"after_id\":%lld,\"limit\":1000}", (long long)last);
		cec_store(c, "cec.outbox.pending", a, load_done, c);
	}
	cec_outbox_kick(c);
}

void cec_outbox_load(cec_ctx_t *c) { cec_store(c, "cec.outbox.pending", "{\"limit\":1000}", load_done, c); }

/* ---- tokens ---- */

static char *url_for(const cec_partner_rt_t *pt, cec_iface_t iface)
{
	const char *name = evcs_cec_iface_name(iface);
	size_t n = strlen(pt->base_url);
	char *u = malloc(n + strlen(name) + 2);
	if (u)
		sprintf(u, "%s%s%s", pt->base_url, n && pt->base_url[n - 1] == '/' ? "" : "/", name);
	return u;
}

static char *build_body(cec_ctx_t *c, cec_partner_rt_t *pt, const json_t *data)
{
	char ts[15], seq[5];
	if (evcs_cec_stamp_next(&pt->stamp, cec_now_ms() / 1000, pt->profile.utc_offset_sec, ts, seq))
		return NULL; /* 9999 in this second: the caller retries */
	cec_status_t st;
	char *b = evcs_cec_request_build(&pt->profile, &pt->out_keys, pt->our_operator_id, data, ts, seq, &st);
	if (!b)
		LOG(c, EVCS_LOG_ERR, pt->tenant_id, "partner %s: cannot build request: %s", pt->operator_id, st.msg);
	return b;
}

struct tok_ctx {
	cec_ctx_t *c;
	int64_t partner_id;
};

static void token_fail(cec_ctx_t *c, cec_partner_rt_t *pt, const char *why)
{
	pt->token_busy = false;
	pt->token_failures++;
	pt->token_retry_ms = cec_now_ms() + backoff_ms(c, pt->token_failures);
	LOG(c, EVCS_LOG_WARNING, pt->tenant_id, "partner %s: query_token failed: %s", pt->operator_id, why);
	cec_outbox_kick(c);
}

static void token_done(long code, const char *body, size_t len, const char *err, void *ud)
{
	struct tok_ctx *tc = ud;
	cec_ctx_t *c = tc->c;
	cec_partner_rt_t *pt = cec_partner_by_id(c, tc->partner_id);
	free(tc);
	if (!pt)
		return;
	if (code == 0) {
		token_fail(c, pt, err && *err ? err : "no response");
		return;
	}
	cec_response_t r;
	cec_status_t st;
	if (evcs_cec_response_parse(body, len, &pt->profile, &pt->out_keys, &r, &st)) {
		char why[256];
		snprintf(why, sizeof why, "HTTP %ld, bad reply: %s", code, st.msg);
		token_fail(c, pt, why);
		return;
	}
	char *tok = NULL;
	int64_t ttl = 0;
	int fr = 0;
	if (r.ret != 0 || !r.data || evcs_cec_token_reply_parse(r.data, &tok, &ttl, &fr, &st)) {
		char why[256];
		snprintf(why, sizeof why, "Ret %d %s FailReason %d", r.ret, r.msg ? r.msg : "", fr);
		evcs_cec_response_clear(&r);
		token_fail(c, pt, why);
		return;
	}
	evcs_cec_response_clear(&r);
	free(pt->token);
	pt->token = tok;
	pt->token_exp_ms = cec_now_ms() + ttl * 1000;
	pt->token_busy = false;
	pt->token_failures = 0;
	LOG(c, EVCS_LOG_INFO, pt->tenant_id, "partner %s: token obtained, valid %lld s", pt->operator_id, (long long)ttl);
	char *a = NULL;
	json_t *j = json_pack("{s:I, s:I, s:s, s:I}", "tenant_id", (json_int_t)pt->tenant_id, "id", (json_int_t)pt->id,
			      "access_token", tok, "token_expires_ms", (json_int_t)pt->token_exp_ms);
	if (j && (a = json_dumps(j, JSON_COMPACT)))
		cec_store(c, "cec.partner.token", a, store_ignore, c);
	free(a);
	json_decref(j);
	cec_outbox_kick(c);
}

static void fetch_token(cec_ctx_t *c, cec_partner_rt_t *pt)
{
	if (pt->token_busy || cec_now_ms() < pt->token_retry_ms)
		return;
	json_t *d = evcs_cec_token_request(pt->our_operator_id, pt->user_operator_secret);
	char *body = d ? build_body(c, pt, d) : NULL;
	json_decref(d);
	char *url = url_for(pt, CEC_IF_QUERY_TOKEN);
	struct tok_ctx *tc = malloc(sizeof *tc);
	if (!body || !url || !tc) {
		free(body);
		free(url);
		free(tc);
		return;
	}
	tc->c = c;
	tc->partner_id = pt->id;
	pt->token_busy = true;
	if (cec_http_post(c->http, url, NULL, body, token_done, tc)) {
		free(tc);
		token_fail(c, pt, "cannot start the HTTP request");
	}
	free(body);
	free(url);
}

/* Valid and not in its last tenth (at most 5 min) of life: renew ahead of expiry (§5). */
static bool token_fresh(const cec_partner_rt_t *pt, int64_t now)
{
	if (!pt->token)
		return false;
	int64_t left = pt->token_exp_ms - now;
	int64_t margin = (pt->token_exp_ms - now) / 10;
	if (margin > 300000)
		margin = 300000;
	return left > margin && left > 1000;
}

/* ---- sending ---- */

struct send_ctx {
	cec_ctx_t *c;
	int64_t partner_id;
	ob_entry_t *e;
};

static void entry_retry(cec_ctx_t *c, ob_entry_t *e, const char *why)
{
	e->state = OB_READY;
	e->pt->inflight--;
	e->attempts++;
	e->next_ms = cec_now_ms() + backoff_ms(c, e->attempts);
	c->api->metric_add(c->m_push_fail, 1);
	LOG(c, e->attempts <= 3 ? EVCS_LOG_INFO : EVCS_LOG_WARNING, e->tenant_id,
	    "push %s #%lld to %s failed (attempt %u, next in %lld ms): %s", evcs_cec_iface_name(e->iface),
	    (long long)e->id, e->pt->operator_id, e->attempts, (long long)(e->next_ms - cec_now_ms()), why);
	json_t *a = json_pack("{s:I, s:I, s:i, s:I, s:s}", "tenant_id", (json_int_t)e->tenant_id, "id", (json_int_t)e->id,
			      "attempts", (int)e->attempts, "next_attempt_ms", (json_int_t)e->next_ms, "last_error", why);
	char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	if (s)
		cec_store(c, "cec.outbox.retry", s, store_ignore, c);
	free(s);
	json_decref(a);
}

static void send_done(long code, const char *body, size_t len, const char *err, void *ud)
{
	struct send_ctx *sc = ud;
	cec_ctx_t *c = sc->c;
	ob_entry_t *e = sc->e;
	free(sc);
	cec_partner_rt_t *pt = e->pt;
	char why[300];
	if (code == 0) {
		snprintf(why, sizeof why, "%s", err && *err ? err : "no response");
		entry_retry(c, e, why);
		goto out;
	}
	cec_response_t r;
	cec_status_t st;
	if (evcs_cec_response_parse(body, len, &pt->profile, &pt->out_keys, &r, &st)) {
		snprintf(why, sizeof why, "HTTP %ld: %s", code, st.msg);
		entry_retry(c, e, why);
		goto out;
	}
	if (r.ret == CEC_RET_TOKEN) {
		/* §5: fetch a new token and retry once at once; a second 4002 backs off. */
		free(pt->token);
		pt->token = NULL;
		if (!e->token_retry) {
			e->token_retry = true;
			e->state = OB_READY;
			pt->inflight--;
		} else
			entry_retry(c, e, "Ret 4002 twice");
		evcs_cec_response_clear(&r);
		goto out;
	}
	if (r.ret != 0 || !r.data) {
		snprintf(why, sizeof why, "Ret %d %s", r.ret, r.msg ? r.msg : "");
		evcs_cec_response_clear(&r);
		entry_retry(c, e, why);
		goto out;
	}
	cec_push_result_t pr;
	if (evcs_cec_parse_push_reply(e->iface, r.data, &pr, &st) || !pr.done) {
		snprintf(why, sizeof why, "not acknowledged (code %d, FailReason %d)%s%s", pr.code, pr.fail_reason,
			 st.ret ? ": " : "", st.ret ? st.msg : "");
		evcs_cec_response_clear(&r);
		entry_retry(c, e, why);
		goto out;
	}
	if (e->iface == CEC_IF_CHECK_CHARGE_ORDERS) {
		cec_check_reply_t cr;
		if (evcs_cec_parse_check_reply(r.data, &cr, &st) == 0) {
			if (cr.total_disputes > 0)
				LOG(c, EVCS_LOG_WARNING, e->tenant_id, "partner %s disputes %d order(s) of %s",
				    pt->operator_id, cr.total_disputes, cr.check_seq);
			evcs_cec_check_reply_clear(&cr);
		}
	}
	evcs_cec_response_clear(&r);
	c->api->metric_add(c->m_push_ok, 1);
	LOG(c, EVCS_LOG_DEBUG, e->tenant_id, "push %s #%lld to %s acknowledged", evcs_cec_iface_name(e->iface),
	    (long long)e->id, pt->operator_id);
	pt->inflight--;
	json_t *a = json_pack("{s:I, s:I}", "tenant_id", (json_int_t)e->tenant_id, "id", (json_int_t)e->id);
	char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	if (s)
		cec_store(c, "cec.outbox.done", s, store_ignore, c);
	free(s);
	json_decref(a);
	entry_unlink_free(e);
out:
	cec_outbox_kick(c);
}

static void send_entry(cec_ctx_t *c, ob_entry_t *e)
{
	cec_partner_rt_t *pt = e->pt;
	char *body = build_body(c, pt, e->data);
	char *url = url_for(pt, e->iface);
	struct send_ctx *sc = malloc(sizeof *sc);
	if (!body || !url || !sc) {
		free(body);
		free(url);
		free(sc);
		e->next_ms = cec_now_ms() + 1000;
		return;
	}
	sc->c = c;
	sc->partner_id = pt->id;
	sc->e = e;
	LOG(c, EVCS_LOG_DEBUG, e->tenant_id, "push %s #%lld to %s (attempt %u)", evcs_cec_iface_name(e->iface),
	    (long long)e->id, pt->operator_id, e->attempts + 1);
	e->state = OB_INFLIGHT;
	pt->inflight++;
	if (cec_http_post(c->http, url, pt->token, body, send_done, sc)) {
		free(sc);
		entry_retry(c, e, "cannot start the HTTP request");
	}
	free(body);
	free(url);
}

static void send_timer_cb(void *ud)
{
	cec_ctx_t *c = ud;
	c->send_timer = NULL;
	c->send_due_ms = 0;
	cec_outbox_kick(c);
}

static void arm(cec_ctx_t *c, int64_t due, int64_t now)
{
	if (due <= 0)
		return;
	if (c->send_timer && c->send_due_ms && c->send_due_ms <= due)
		return;
	if (c->send_timer)
		c->api->timer_del(c->send_timer);
	int64_t ms = due - now;
	if (ms < 1)
		ms = 1;
	c->send_due_ms = due;
	c->send_timer = c->api->timer_add(c->p, (unsigned)ms, 0, send_timer_cb, c);
}

/* Schedule whatever can go now; arm one timer for the earliest future attempt. */
void cec_outbox_kick(cec_ctx_t *c)
{
	if (c->stopping || !c->ready)
		return;
	int64_t now = cec_now_ms(), due = 0;
	put_next(c);
	if (c->put_head && c->put_head->next_ms > now)
		due = c->put_head->next_ms;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next) {
		if (!pt->head)
			continue;
		if (!token_fresh(pt, now)) {
			if (!pt->token_busy && now < pt->token_retry_ms)
				due = due && due < pt->token_retry_ms ? due : pt->token_retry_ms;
			fetch_token(c, pt);
			/* With an expired token nothing can go; a token about to expire is still usable. */
			if (!pt->token || pt->token_exp_ms <= now)
				continue;
		}
		/* Lanes with an earlier undelivered entry are blocked. */
		const char *blocked[256];
		size_t nb = 0, scanned = 0;
		for (ob_entry_t *e = pt->head; e && scanned < 4096; e = e->next, scanned++) {
			bool is_blocked = false;
			for (size_t i = 0; i < nb && !is_blocked; i++)
				is_blocked = strcmp(blocked[i], e->lane) == 0;
			if (!is_blocked && e->state == OB_READY && pt->inflight < (unsigned)c->max_inflight) {
				if (e->next_ms <= now)
					send_entry(c, e);
				else
					due = due && due < e->next_ms ? due : e->next_ms;
			}
			if (!is_blocked && nb < 256)
				blocked[nb++] = e->lane;
			if (nb == 256)
				break;
		}
	}
	arm(c, due, now);
}

void cec_outbox_free(cec_ctx_t *c)
{
	if (c->send_timer)
		c->api->timer_del(c->send_timer);
	c->send_timer = NULL;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next)
		while (pt->head) {
			ob_entry_t *e = pt->head;
			pt->head = e->next;
			json_decref(e->data);
			free(e);
		}
	c->put_head = c->put_tail = NULL;
}
