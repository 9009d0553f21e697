/* tests/cec_partner.c: the test partner platform (contract in cec_partner.h). */
#include "cec_partner.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cec_psim {
	cec_psim_cfg_t cfg;
	cec_profile_t profile;
	struct event_base *base;
	struct evhttp *http;
	int port;
	pthread_t thr;
	pthread_mutex_t mu;
	bool down;
	cec_token_store_t *tokens;
	json_t *msgs;
	unsigned refused[8]; /* 0:4001 1:4002 2:4003 3:4004 4:503 5:other */
	unsigned issued;
};

static int refused_slot(int code)
{
	switch (code) {
	case 4001: return 0;
	case 4002: return 1;
	case 4003: return 2;
	case 4004: return 3;
	case 503: return 4;
	default: return 5;
	}
}

static int lookup(void *ud, const char *opid, cec_partner_t *out)
{
	cec_psim_t *s = ud;
	if (strcmp(opid, s->cfg.evcs_id) != 0)
		return 0;
	out->profile = &s->profile;
	out->keys = &s->cfg.evcs_keys;
	out->operator_secret = s->cfg.evcs_secret;
	out->user = s;
	return 1;
}

static void reply(struct evhttp_request *req, int http, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json;charset=utf-8");
	evhttp_send_reply(req, http, http == 200 ? "OK" : "Service Unavailable", b);
	evbuffer_free(b);
}

static json_t *ack_for(cec_iface_t i, const json_t *d)
{
	json_t *seq = evcs_cec_jget(d, "StartChargeSeq");
	switch (i) {
	case CEC_IF_NOTIFY_STATION_STATUS: return json_pack("{s:i}", "Status", 0);
	case CEC_IF_NOTIFY_START_CHARGE_RESULT:
	case CEC_IF_NOTIFY_EQUIP_CHARGE_STATUS:
	case CEC_IF_NOTIFY_STOP_CHARGE_RESULT:
		return json_pack("{s:O, s:i, s:i}", "StartChargeSeq", seq ? seq : json_null(), "SuccStat", 0, "FailReason", 0);
	case CEC_IF_NOTIFY_CHARGE_ORDER_INFO:
		return json_pack("{s:O, s:O, s:i}", "StartChargeSeq", seq ? seq : json_null(), "ConnectorID",
				 evcs_cec_jget(d, "ConnectorID") ?: json_null(), "ConfirmResult", 0);
	case CEC_IF_CHECK_CHARGE_ORDERS:
		return json_pack("{s:O, s:O, s:O, s:i, s:i, s:i, s:[]}", "CheckOrderSeq",
				 evcs_cec_jget(d, "CheckOrderSeq") ?: json_null(), "StartTime",
				 evcs_cec_jget(d, "StartTime") ?: json_null(), "EndTime",
				 evcs_cec_jget(d, "EndTime") ?: json_null(), "TotalDisputeOrder", 0, "TotalDisputePower", 0,
				 "TotalDisputeMoney", 0, "DisputeOrders");
	default: return NULL;
	}
}

static void handle(struct evhttp_request *req, void *arg)
{
	cec_psim_t *s = arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *slash = strrchr(uri, '/');
	int iface = evcs_cec_iface_from_name(slash ? slash + 1 : uri);
	pthread_mutex_lock(&s->mu);
	bool down = s->down;
	if (down)
		s->refused[refused_slot(503)]++;
	pthread_mutex_unlock(&s->mu);
	if (down) {
		reply(req, 503, "down for maintenance\n");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	evbuffer_copyout(in, body, len);
	body[len] = 0;
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	cec_inbound_t ib;
	pthread_mutex_lock(&s->mu);
	int ret = iface < 0 ? CEC_RET_BIZ
			    : evcs_cec_accept(body, len, auth, iface == CEC_IF_QUERY_TOKEN, lookup, s, s->tokens,
					      time(NULL), &ib);
	json_t *data = NULL;
	cec_status_t st = {0};
	if (iface >= 0 && ret == 0) {
		if (iface == CEC_IF_QUERY_TOKEN) {
			data = evcs_cec_token_serve(&ib, s->tokens, time(NULL), &st);
			s->issued++;
		} else {
			data = ack_for((cec_iface_t)iface, ib.data);
			json_array_append_new(s->msgs, json_pack("{s:s, s:O}", "iface", evcs_cec_iface_name(iface), "data",
								 ib.data));
		}
	}
	if (iface >= 0 && ret)
		s->refused[refused_slot(ret)]++;
	pthread_mutex_unlock(&s->mu);
	char *out = iface < 0 ? strdup("{\"Ret\":4004,\"Msg\":\"no such interface\",\"Data\":\"\",\"Sig\":\"\"}")
			      : evcs_cec_inbound_reply(&ib, ret ? ret : (data ? 0 : st.ret), ret ? ib.st.msg : "", data);
	reply(req, 200, out ? out : "");
	free(out);
	json_decref(data);
	if (iface >= 0)
		evcs_cec_inbound_clear(&ib);
	free(body);
}

static void *run(void *arg)
{
	cec_psim_t *s = arg;
	event_base_dispatch(s->base);
	return NULL;
}

cec_psim_t *cec_psim_start(const cec_psim_cfg_t *cfg)
{
	evthread_use_pthreads();
	cec_psim_t *s = calloc(1, sizeof *s);
	s->cfg = *cfg;
	evcs_cec_profile_default(&s->profile);
	s->profile.token_ttl = cfg->token_ttl > 0 ? cfg->token_ttl : 7200;
	pthread_mutex_init(&s->mu, NULL);
	s->tokens = evcs_cec_tokens_new();
	s->msgs = json_array();
	s->base = event_base_new();
	s->http = evhttp_new(s->base);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_POST);
	evhttp_set_gencb(s->http, handle, s);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
	if (!bs) {
		cec_psim_stop(s);
		return NULL;
	}
	struct sockaddr_storage ss;
	ev_socklen_t sl = sizeof ss;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
	s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	pthread_create(&s->thr, NULL, run, s);
	return s;
}

void cec_psim_stop(cec_psim_t *s)
{
	if (!s)
		return;
	if (s->port) {
		event_base_loopbreak(s->base);
		pthread_join(s->thr, NULL);
	}
	evhttp_free(s->http);
	event_base_free(s->base);
	evcs_cec_tokens_free(s->tokens);
	json_decref(s->msgs);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int cec_psim_port(cec_psim_t *s) { return s->port; }

void cec_psim_set_down(cec_psim_t *s, bool down)
{
	pthread_mutex_lock(&s->mu);
	s->down = down;
	pthread_mutex_unlock(&s->mu);
}

void cec_psim_forget_tokens(cec_psim_t *s)
{
	pthread_mutex_lock(&s->mu);
	evcs_cec_tokens_free(s->tokens);
	s->tokens = evcs_cec_tokens_new();
	pthread_mutex_unlock(&s->mu);
}

json_t *cec_psim_msgs(cec_psim_t *s)
{
	pthread_mutex_lock(&s->mu);
	json_t *c = json_deep_copy(s->msgs);
	pthread_mutex_unlock(&s->mu);
	return c;
}

size_t cec_psim_count(cec_psim_t *s, const char *iface)
{
	size_t n = 0, i;
	json_t *m;
	pthread_mutex_lock(&s->mu);
	json_array_foreach(s->msgs, i, m) if (!iface || !strcmp(json_string_value(json_object_get(m, "iface")), iface)) n++;
	pthread_mutex_unlock(&s->mu);
	return n;
}

unsigned cec_psim_refused(cec_psim_t *s, int code)
{
	pthread_mutex_lock(&s->mu);
	unsigned n = s->refused[refused_slot(code)];
	pthread_mutex_unlock(&s->mu);
	return n;
}

unsigned cec_psim_tokens_issued(cec_psim_t *s)
{
	pthread_mutex_lock(&s->mu);
	unsigned n = s->issued;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- client ---- */

struct buf {
	char *p;
	size_t n;
};

static size_t wr(char *ptr, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;
	char *q = realloc(b->p, b->n + size * n + 1);
	if (!q)
		return 0;
	memcpy(q + b->n, ptr, size * n);
	b->p = q;
	b->n += size * n;
	b->p[b->n] = 0;
	return size * n;
}

void cec_call_clear(cec_call_t *r)
{
	json_decref(r->data);
	free(r->raw);
	memset(r, 0, sizeof *r);
}

int cec_client_post(cec_client_t *c, const char *iface, const char *body, const char *bearer, cec_call_t *out)
{
	memset(out, 0, sizeof *out);
	out->ret = -1000;
	CURL *e = curl_easy_init();
	char url[512], auth[256];
	snprintf(url, sizeof url, "%s%s", c->base, iface);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json;charset=utf-8");
	if (bearer) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
		h = curl_slist_append(h, auth);
	}
	struct buf b = {0};
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wr);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	CURLcode rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->http);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	out->raw = b.p ? b.p : strdup("");
	if (rc != CURLE_OK)
		return -1;
	cec_response_t r;
	cec_status_t st;
	if (evcs_cec_response_parse(out->raw, strlen(out->raw), &c->profile, &c->keys, &r, &st) == 0) {
		out->ret = r.ret;
		out->signed_ok = !r.unsigned_error;
		snprintf(out->msg, sizeof out->msg, "%s", r.msg ? r.msg : "");
		out->data = r.data;
		r.data = NULL;
		evcs_cec_response_clear(&r);
	} else {
		/* Not verifiable with our keys (e.g. an unknown OperatorID gets an unsigned reply). */
		json_t *j = json_loads(out->raw, 0, NULL);
		if (json_is_integer(json_object_get(j, "Ret")))
			out->ret = (int)json_integer_value(json_object_get(j, "Ret"));
		snprintf(out->msg, sizeof out->msg, "%s", json_string_value(json_object_get(j, "Msg")) ?: "");
		json_decref(j);
	}
	return 0;
}

int cec_client_call(cec_client_t *c, const char *iface, json_t *data, cec_call_t *out)
{
	char ts[15], seq[5];
	while (evcs_cec_stamp_next(&c->stamp, time(NULL), c->profile.utc_offset_sec, ts, seq))
		;
	cec_status_t st;
	char *body = evcs_cec_request_build(&c->profile, &c->keys, c->operator_id, data, ts, seq, &st);
	json_decref(data);
	if (!body) {
		memset(out, 0, sizeof *out);
		return -1;
	}
	int r = cec_client_post(c, iface, body, strcmp(iface, "query_token") ? c->token : NULL, out);
	free(body);
	return r;
}

int cec_client_login(cec_client_t *c)
{
	json_t *d = evcs_cec_token_request(c->operator_id, c->secret);
	cec_call_t r;
	int rc = cec_client_call(c, "query_token", d, &r);
	char *tok = NULL;
	int64_t ttl;
	int fr;
	cec_status_t st;
	if (rc == 0 && r.ret == 0 && r.data && evcs_cec_token_reply_parse(r.data, &tok, &ttl, &fr, &st) == 0) {
		snprintf(c->token, sizeof c->token, "%s", tok);
		free(tok);
		cec_call_clear(&r);
		return 0;
	}
	cec_call_clear(&r);
	return -1;
}

char *cec_client_envelope(cec_client_t *c, const char *data_text, bool good_sig)
{
	char ts[15], seq[5], sig[33];
	while (evcs_cec_stamp_next(&c->stamp, time(NULL), c->profile.utc_offset_sec, ts, seq))
		;
	evcs_cec_sign_request(c->keys.sig_secret, c->operator_id, data_text, ts, seq, false, sig);
	if (!good_sig)
		sig[0] = sig[0] == 'A' ? 'B' : 'A';
	json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:s}", "OperatorID", c->operator_id, "Data", data_text, "TimeStamp",
				ts, "Seq", seq, "Sig", sig);
	char *s = json_dumps(env, JSON_COMPACT);
	json_decref(env);
	return s;
}
