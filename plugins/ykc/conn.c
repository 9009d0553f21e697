/*
 * plugins/ykc/conn.c: pile connections of the YKC plugin: accept, read (frame scanning and
 * resynchronisation, §2.5), close; the login (0x01 -> pile.login -> 0x02, §1.2), replacing
 * logins (§1.1), the failed-login rate limit per source address, presence (claim/release,
 * PILE_ONLINE/OFFLINE, pile.seen is written by the dispatcher, pile.offline here), heartbeats
 * (0x03/0x04), time sync (0x56), the pile map (serial -> connection), the per-connection
 * storage-call slots (struct req) and frame sending.
 *
 * A struct sess lives from accept until the connection is closed and the last storage
 * callback that refers to it has run (refs; sess_unref frees it).
 */
#include "ykc.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pile map ------------------------------------------------------------------------------- */

static unsigned pile_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h & (PILE_BUCKETS - 1);
}

static struct sess *map_get(struct ykc *y, const char *pile)
{
	for (struct sess *s = y->map[pile_hash(pile)]; s; s = s->hnext)
		if (strcmp(s->pile, pile) == 0)
			return s;
	return NULL;
}

static void map_put(struct ykc *y, struct sess *s)
{
	unsigned h = pile_hash(s->pile);
	s->hnext = y->map[h];
	y->map[h] = s;
}

static int map_del(struct ykc *y, struct sess *s)
{
	for (struct sess **pp = &y->map[pile_hash(s->pile)]; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			s->hnext = NULL;
			return 1;
		}
	return 0;
}

/* ---- failed-login rate limit per source address ------------------------------------------- */

static struct failed *failed_slot(struct ykc *y, const char *addr, int create)
{
	unsigned h = pile_hash(addr) & (FAILED_SLOTS - 1);
	int64_t minute = now_ms() / 60000;
	struct failed *victim = NULL;
	for (unsigned i = 0; i < 8; i++) {
		struct failed *f = &y->failed[(h + i) & (FAILED_SLOTS - 1)];
		if (f->addr[0] && strcmp(f->addr, addr) == 0) {
			if (f->minute != minute) {
				f->minute = minute;
				f->count = 0;
			}
			return f;
		}
		if (!victim || !f->addr[0] || f->minute < victim->minute)
			victim = f;
	}
	if (!create)
		return NULL;
	snprintf(victim->addr, sizeof victim->addr, "%s", addr);
	victim->minute = minute;
	victim->count = 0;
	return victim;
}

static int login_blocked(struct ykc *y, const char *addr)
{
	if (y->max_failed_per_min <= 0)
		return 0;
	struct failed *f = failed_slot(y, addr, 0);
	return f && f->count >= (unsigned)y->max_failed_per_min;
}

/* ---- session lifetime ------------------------------------------------------------------------ */

void sess_unref(struct sess *s)
{
	if (--s->refs > 0)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		s->y->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s->guns);
	free(s);
}

struct req *req_get(struct sess *s, uint8_t type, const uint8_t seq[2])
{
	for (int i = 0; i < MAX_REQ; i++)
		if (!s->req[i].used) {
			struct req *r = &s->req[i];
			memset(r, 0, sizeof *r);
			r->used = 1;
			r->s = s;
			r->type = type;
			if (seq)
				memcpy(r->seq, seq, 2);
			s->refs++;
			return r;
		}
	LOG(s, EVCS_LOG_WARNING, "too many frames awaiting storage; 0x%02X dropped (the pile retries)", type);
	return NULL;
}

void req_put(struct req *r)
{
	struct sess *s = r->s;
	free(r->job);
	r->job = NULL;
	r->used = 0;
	sess_unref(s);
}

/* ---- sending ----------------------------------------------------------------------------------- */

/* Encode m and write it. seq NULL: a platform-originated frame (per-connection counter, §2.2);
 * otherwise the request's two bytes verbatim. The CRC order is the pile's latest (§2.4). */
int send_msg(struct sess *s, const struct evcs_ykc_msg *m, const uint8_t *seq, uint8_t used_seq[2])
{
	if (s->closed)
		return EVCS_EOFFLINE;
	uint8_t sq[2];
	if (seq)
		memcpy(sq, seq, 2);
	else
		evcs_ykc_seq_from_counter(s->counter++, sq);
	const char *bad = NULL;
	int n = evcs_ykc_encode_frame(m, sq, s->crc, s->y->out, sizeof s->y->out, &bad);
	if (n < 0) {
		LOG(s, EVCS_LOG_ERR, "cannot encode 0x%02X: field %s (%d)", m->type, bad ? bad : "?", n);
		return EVCS_EINVAL;
	}
	if (used_seq)
		memcpy(used_seq, sq, 2);
	api->metric_add(s->y->m_frames_out, 1);
	return api->conn_write(s->c, s->y->out, (size_t)n);
}

void msg_init(struct evcs_ykc_msg *m, uint8_t type)
{
	memset(m, 0, sizeof *m);
	m->type = type;
}

static void send_login_reply(struct sess *s, const char *pile, const uint8_t seq[2], int result)
{
	struct evcs_ykc_msg m;
	msg_init(&m, 0x02);
	snprintf(m.u.pile_result.pile, sizeof m.u.pile_result.pile, "%s", pile);
	m.u.pile_result.result = (uint8_t)result;
	send_msg(s, &m, seq, NULL);
}

void send_time_sync(struct sess *s, uint8_t used_seq[2])
{
	struct evcs_ykc_msg m;
	msg_init(&m, 0x56);
	snprintf(m.u.time_sync.pile, sizeof m.u.time_sync.pile, "%s", s->pile);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	local_tm(s, ts.tv_sec, &tm);
	evcs_ykc_cp56_from_tm(&tm, (unsigned)(ts.tv_nsec / 1000000), &m.u.time_sync.time);
	send_msg(s, &m, NULL, used_seq);
}

static void sess_online(struct sess *s, json_t *r, const uint8_t seq[2]);

static void login_done(int status, const char *result, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	struct ykc *y = s->y;
	json_t *r = result ? json_loads(result, 0, NULL) : NULL;
	if (s->closed)
		goto out;
	if (status != EVCS_OK) {
		/* cannot tell whether the pile is ours: no answer; the pile retries its login */
		LOG(s, EVCS_LOG_WARNING, "login of %s not answered: storage %s", s->pile, api->status_name(status));
		s->state = S_NEW;
		goto out;
	}
	if (!json_is_true(json_object_get(r, "accepted"))) {
		const char *why = json_string_value(json_object_get(r, "reason"));
		api->log(y->p, EVCS_LOG_NOTICE, 0, s->pile, "login refused from %s: %s", s->peer, why ? why : "?");
		send_login_reply(s, s->pile, rq->seq, 1);
		api->metric_add(y->m_login_refused, 1);
		struct failed *f = failed_slot(y, api->conn_peer_addr(s->c), 1);
		if (f)
			f->count++;
		evcs_field_t fl[] = {EVCS_FS("peer", s->peer), EVCS_FS("reason", why ? why : "refused")};
		publish(s, EVCS_EV_LOGIN_REFUSED, 0, fl, 2);
		api->conn_close(s->c, 1, "login refused");
		goto out;
	}
	sess_online(s, r, rq->seq);
out:
	json_decref(r);
	req_put(rq);
}

static void on_sync_timer(void *ud)
{
	struct sess *s = ud;
	if (s->state == S_ONLINE)
		send_time_sync(s, NULL);
}


static void sess_online(struct sess *s, json_t *r, const uint8_t seq[2])
{
	struct ykc *y = s->y;
	s->tenant = json_integer_value(json_object_get(r, "tenant_id"));
	s->pile_id = json_integer_value(json_object_get(r, "pile_id"));
	s->station_id = json_integer_value(json_object_get(r, "station_id"));
	json_t *t = json_object_get(r, "tariff");
	if (json_is_object(t) && tariff_load(s, t) < 0)
		LOG(s, EVCS_LOG_WARNING, "tariff from storage unusable; the pile gets none yet");
	/* §1.1: a new login replaces a live connection of the same pile */
	struct sess *old = map_get(y, s->pile);
	if (old && old != s) {
		map_del(y, old);
		LOG(s, EVCS_LOG_NOTICE, "new login from %s replaces the connection from %s", s->peer, old->peer);
		api->conn_close(old->c, 0, "replaced by a new login");
	} else {
		y->online++;
	}
	if (old != s)
		map_put(y, s);
	api->metric_set(y->m_online, y->online);
	s->state = S_ONLINE;
	api->conn_set_identity(s->c, s->tenant, s->pile);
	api->conn_set_idle_timeout(s->c, (unsigned)y->offline_after_ms);
	if (s->login_timer) {
		api->timer_del(s->login_timer);
		s->login_timer = NULL;
	}
	if (api->pile_claim(y->p, s->tenant, s->pile, on_command, s) != EVCS_OK)
		LOG(s, EVCS_LOG_ERR, "cannot claim the pile for commands");
	send_login_reply(s, s->pile, seq, 0);
	api->metric_add(y->m_login_ok, 1);
	s->last_seen_store_ms = now_ms();
	LOG(s, EVCS_LOG_INFO, "online from %s (YKC %s, %d gun(s))", s->peer, proto_name(s->proto), s->ngun);
	evcs_field_t f[] = {EVCS_FS("protocol", "ykc"), EVCS_FS("version", proto_name(s->proto)),
			    EVCS_FS("peer", s->peer), EVCS_FI("gun_count", s->ngun)};
	publish(s, EVCS_EV_PILE_ONLINE, 0, f, 4);
	/* §1.2 step 5: set the pile's clock right after login, then daily */
	send_time_sync(s, NULL);
	if (!s->sync_timer && y->sync_interval_ms > 0)
		s->sync_timer = api->timer_add(y->p, (unsigned)y->sync_interval_ms, 1, on_sync_timer, s);
}

void on_login(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_login *l)
{
	struct ykc *y = s->y;
	if (s->state == S_LOGIN_PENDING)
		return; /* the pile retries while we ask storage: one question at a time */
	if (s->state == S_ONLINE) {
		if (strcmp(l->pile, s->pile) == 0)
			send_login_reply(s, s->pile, f->seq, 0); /* our 0x02 was lost: say it again */
		else
			LOG(s, EVCS_LOG_WARNING, "login as %s on the connection of %s ignored", l->pile, s->pile);
		return;
	}
	if (strspn(l->pile, "0123456789") != 14) {
		api->log(y->p, EVCS_LOG_NOTICE, 0, NULL, "login from %s with malformed pile number %s refused",
			 s->peer, l->pile);
		send_login_reply(s, l->pile, f->seq, 1);
		api->conn_close(s->c, 1, "bad pile number");
		return;
	}
	memcpy(s->pile, l->pile, sizeof s->pile);
	evcs_ykc_bcd_encode(s->pile, s->pile_bcd, 7);
	s->announced = l->protocol_version;
	s->proto = evcs_ykc_session_proto(s->lst->proto, l->protocol_version, false);
	if (l->protocol_version != (uint8_t)s->lst->proto)
		/* §1.7: the version byte is unreliable; never refuse over it */
		LOG(s, EVCS_LOG_INFO, "announces protocol_version %u on a %s listener", l->protocol_version,
		    proto_name(s->lst->proto));
	s->ngun = l->gun_count >= 1 && l->gun_count <= MAX_GUNS ? l->gun_count : 1;
	if (!s->guns) {
		s->guns = calloc((size_t)s->ngun, sizeof *s->guns);
		if (!s->guns) {
			api->conn_close(s->c, 0, "out of memory");
			return;
		}
		for (int g = 0; g < s->ngun; g++)
			s->guns[g].status = 0xFF;
	}
	struct req *rq = req_get(s, 0x01, f->seq);
	if (!rq)
		return;
	char fw[64], sim[48], peer[96];
	int n = snprintf(y->jbuf, sizeof y->jbuf,
			 "{\"serial\":\"%s\",\"protocol\":\"ykc\",\"protocol_version\":%u,\"gun_count\":%u,"
			 "\"pile_type\":%u,\"firmware\":\"%s\",\"sim\":\"%s\",\"network\":%u,\"carrier\":%u,"
			 "\"peer\":\"%s\"}",
			 s->pile, l->protocol_version, l->gun_count, l->pile_type,
			 jesc(fw, sizeof fw, l->program_version), jesc(sim, sizeof sim, l->sim), l->network,
			 l->carrier, jesc(peer, sizeof peer, s->peer));
	(void)n;
	s->state = S_LOGIN_PENDING;
	if (api->store(y->p, "pile.login", y->jbuf, login_done, rq) != EVCS_OK) {
		s->state = S_NEW;
		req_put(rq);
	}
}

void on_heartbeat(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_heartbeat *h)
{
	struct evcs_ykc_msg m;
	msg_init(&m, 0x04);
	memcpy(m.u.heartbeat_reply.pile, s->pile, sizeof s->pile);
	memcpy(m.u.heartbeat_reply.gun, h->gun, sizeof h->gun);
	m.u.heartbeat_reply.ack = 0;
	send_msg(s, &m, f->seq, NULL);
}

/* ---- connections ------------------------------------------------------------------------------- */

static void login_timeout(void *ud)
{
	struct sess *s = ud;
	s->login_timer = NULL;
	if (s->state != S_ONLINE && !s->closed) {
		api->log(s->y->p, EVCS_LOG_INFO, 0, NULL, "%s did not log in within %lld ms; closing", s->peer,
			 s->y->login_timeout_ms);
		api->conn_close(s->c, 0, "login timeout");
	}
}

int on_accept(evcs_conn_t *c, void *ud)
{
	struct lst *l = ud;
	struct ykc *y = l->y;
	const char *addr = api->conn_peer_addr(c);
	if (login_blocked(y, addr)) {
		api->log(y->p, EVCS_LOG_NOTICE, 0, NULL, "connection from %s refused: too many failed logins", addr);
		return -1;
	}
	struct sess *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->y = y;
	s->lst = l;
	s->c = c;
	s->refs = 1; /* the connection's own */
	s->proto = l->proto;
	s->crc = EVCS_YKC_CRC_LE;
	snprintf(s->peer, sizeof s->peer, "%s", api->conn_peer(c));
	s->next = y->all;
	if (y->all)
		y->all->prev = s;
	y->all = s;
	api->conn_set_data(c, s);
	s->login_timer = api->timer_add(y->p, (unsigned)y->login_timeout_ms, 0, login_timeout, s);
	return 0;
}

void on_read(evcs_conn_t *c, void *ud)
{
	struct sess *s = api->conn_get_data(c);
	struct ykc *y = s->y;
	struct evbuffer *in = api->conn_input(c);
	s->refs++; /* a handler may close the connection under us */
	for (;;) {
		size_t len = evbuffer_get_length(in);
		if (!len || s->closed)
			break;
		/* two frames' worth is always enough to find the next frame (§2.1) */
		size_t take = len < 2 * EVCS_YKC_MAX_FRAME ? len : 2 * EVCS_YKC_MAX_FRAME;
		const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)take);
		if (!buf)
			break;
		struct evcs_ykc_scan sc;
		struct evcs_ykc_frame f;
		evcs_ykc_scan_init(&sc, buf, take, y->len_compat ? EVCS_YKC_SCAN_LEN_COMPAT : 0);
		while (!s->closed && evcs_ykc_scan_next(&sc, &f))
			handle_frame(s, &f);
		if (sc.skipped) {
			s->skipped += sc.skipped;
			api->metric_add(y->m_skipped, (int64_t)sc.skipped);
			LOG(s, EVCS_LOG_INFO, "skipped %zu byte(s) of noise (%llu on this connection)", sc.skipped,
			    (unsigned long long)s->skipped);
		}
		if (s->closed)
			break;
		evbuffer_drain(in, sc.pos);
		if (evcs_ykc_scan_keep(&sc) == 0) {
			s->partial_since_ms = 0;
			if (sc.pos == 0)
				break;
			continue;
		}
		/* an incomplete candidate remains */
		int64_t now = now_ms();
		if (!s->partial_since_ms)
			s->partial_since_ms = now;
		if (now - s->partial_since_ms > y->partial_timeout_ms) {
			/* §2.5: a false 0x68 with a big length must not hold real frames back forever */
			evbuffer_drain(in, 1);
			s->skipped++;
			api->metric_add(y->m_skipped, 1);
			s->partial_since_ms = 0;
			continue;
		}
		if (sc.pos == 0)
			break;
	}
	sess_unref(s);
}

void on_close(evcs_conn_t *c, const char *reason, void *ud)
{
	struct sess *s = api->conn_get_data(c);
	if (!s)
		return;
	struct ykc *y = s->y;
	s->closed = 1;
	if (s->login_timer)
		api->timer_del(s->login_timer);
	if (s->sync_timer)
		api->timer_del(s->sync_timer);
	s->login_timer = s->sync_timer = NULL;
	int holder = s->state == S_ONLINE && map_get(y, s->pile) == s;
	for (int i = 0; i < MAX_PCMD; i++) {
		struct pcmd *pc = &s->pcmd[i];
		if (pc->state == PC_FREE)
			continue;
		/* while we hold the pile, releasing the claim answers its commands "offline";
		 * a replaced connection answers its own (the claim moved to the new one) */
		if (pc->cmd && !holder)
			cmd_fail(pc->cmd, EVCS_EOFFLINE, "the pile's connection was replaced");
		pc->cmd = NULL;
		if (pc->state == PC_PREP)
			continue; /* a storage call still refers to this slot and finishes it */
		pcmd_release(pc);
	}
	if (holder) {
		map_del(y, s);
		y->online--;
		api->metric_set(y->m_online, y->online);
		api->pile_release(y->p, s->pile);
		const char *why = strcmp(reason, "idle timeout") == 0 ? "silence" : reason;
		LOG(s, EVCS_LOG_INFO, "offline: %s", why);
		store_fmt(s, "pile.offline", "{\"tenant_id\":%lld,\"pile_id\":%lld,\"ts_ms\":%lld}",
			  (long long)s->tenant, (long long)s->pile_id, (long long)now_ms());
		evcs_field_t f[] = {EVCS_FS("reason", why)};
		publish(s, EVCS_EV_PILE_OFFLINE, 0, f, 1);
	}
	api->conn_set_data(c, NULL);
	sess_unref(s);
}
