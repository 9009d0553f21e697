/*
 * plugins/ykc/sessions.c: YKC charging sessions on the core's protocol-neutral session model
 * (<evcs/plugin.h> "charging sessions (ABI 2)"). Frames are parsed once, here, into the
 * typed structs; no JSON travels between a frame and the core.
 *
 *   0x31 / 0xA1  pile-initiated start: SESSION_START on the bus (a veto answers reason 6), a
 *                trade number (§3.1), api->session_authorize, the card PIN check in both
 *                forms of ykc.md §3.7 (the core hands back the stored hash; the comparison is
 *                constant-time), api->session_open, then 0x32 / 0xA2. EVCS_AUTH_* results map
 *                to the 0x32 failure codes; no verdict (database down) leaves the request
 *                unanswered, and the pile asks again.
 *   0x3B         transaction record: api->session_close with the record's figures, its digest
 *                (SHA-256 of the body: an equal resend is a duplicate, another body for the same
 *                trade number a conflict) and the raw evidence as one INSERT into the plugin's
 *                own table ykc_records (schema/001_records.sql), written by the core in the same
 *                transaction (the EVCS_DB_REFID parameter binds the session's id). A conflicting
 *                body, which the core keeps out of the session, gets its own ykc_records row
 *                from the plugin (api->db_query) before the 0x40. 0x40 result 0 is sent only
 *                after the core answered EVCS_OK (committed); a malformed record is answered
 *                result 1; EVCS_EUNAVAIL and other failures are not answered, so the pile
 *                resends (§1.6). The core publishes TRANSACTION_CLOSED and SESSION_STOPPED.
 *   short 0x3B   quarantined as an alarm with its bytes (§6.3).
 * Remote starts (commands.c) and 0x13 meter readings (handlers.c) call api->session_open and
 * api->session_meter themselves.
 */
#include "ykc.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- trade numbers ---------------------------------------------------------------------------- */

int next_trade(struct sess *s, int gn, char out[33])
{
	struct gun *g = &s->guns[gn - 1];
	time_t now = time(NULL);
	if (now != g->counter_sec) {
		g->counter_sec = now;
		g->counter = 0;
	} else if (++g->counter > 9999) {
		return -1;
	}
	struct tm tm;
	local_tm(s, now, &tm);
	char gs[3];
	gun_str(gs, gn);
	return evcs_ykc_trade_no(out, s->pile, gs, &tm, g->counter);
}

void gun_close_order(struct gun *g)
{
	g->trade_no[0] = 0;
	g->session_id = 0;
	g->idle_in_order = 0;
	g->stopping = 0;
	g->started = 0;
}

/* ---- pile-initiated start (0x31, 1.6 0xA1) ------------------------------------------------------ */

/* 0x32 failure codes (ykc.md §4 0x32) of the neutral authorisation results */
enum {
	FAIL_NO_ACCOUNT = 1,
	FAIL_FROZEN = 2,
	FAIL_LOW_BALANCE = 3,
	FAIL_PILE_DISABLED = 5,
	FAIL_NOT_HERE = 6, /* "account may not charge at this pile": a policy veto */
	FAIL_BAD_PASSWORD = 7,
	FAIL_VIN_UNKNOWN = 9,
};

static int fail_code(int result)
{
	switch (result) {
	case EVCS_AUTH_BLOCKED: return FAIL_FROZEN;
	case EVCS_AUTH_NO_FUNDS: return FAIL_LOW_BALANCE;
	case EVCS_AUTH_PILE_DISABLED: return FAIL_PILE_DISABLED;
	case EVCS_AUTH_BAD_PIN: return FAIL_BAD_PASSWORD;
	case EVCS_AUTH_UNKNOWN_VEHICLE: return FAIL_VIN_UNKNOWN;
	default: return FAIL_NO_ACCOUNT; /* EVCS_AUTH_UNKNOWN and anything newer */
	}
}

/* ykc.md §3.7: the 16 password bytes a pile sends against the card's stored hash (lower-case
 * hex MD5 of the PIN), in both forms piles use: the middle 16 hex characters of the digest as
 * ASCII, or the raw 16-byte digest. Both are always compared, in constant time. A card with
 * no hash on file matches nothing. */
static int pin_matches(const char *pin_hash, const uint8_t sent[16])
{
	uint8_t digest[16];
	if (!pin_hash || strlen(pin_hash) != 32 || hex_to(pin_hash, digest, 16) < 0)
		return 0;
	int ascii = CRYPTO_memcmp(sent, pin_hash + 8, 16) == 0;
	int raw = CRYPTO_memcmp(sent, digest, 16) == 0;
	return ascii | raw;
}

static void send_start_auth(struct sess *s, struct req *rq, int ok, int reason)
{
	struct evcs_ykc_msg m;
	msg_init(&m, rq->type == 0xA1 ? 0xA2 : 0x32);
	struct evcs_ykc_start_auth *a = &m.u.start_auth;
	snprintf(a->trade_no, sizeof a->trade_no, "%s", rq->trade_no);
	memcpy(a->pile, s->pile, sizeof s->pile);
	gun_str(a->gun, rq->gun);
	snprintf(a->logical_card, sizeof a->logical_card, "%s",
		 ok && strlen(rq->logical) == 16 && strspn(rq->logical, "0123456789") == 16 ? rq->logical
											   : "0000000000000000");
	uint32_t bal = 0;
	if (ok && evcs_ykc_balance_from_money(rq->balance > 0 ? rq->balance : 0, &bal) < 0)
		bal = UINT32_MAX;
	a->balance_yuan = bal;
	a->auth_ok = (uint8_t)(ok ? 1 : 0);
	a->fail_reason = (uint8_t)(ok ? 0 : reason);
	memcpy(a->parallel_no, rq->parallel_no, sizeof a->parallel_no);
	if (!a->parallel_no[0])
		memcpy(a->parallel_no, "000000000000", 13);
	send_msg(s, &m, rq->seq, NULL);
}

static void start_opened(int status, const evcs_session_result_t *r, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	if (!s->closed) {
		if (status != EVCS_OK || !r) {
			/* no session stored: stay silent, the pile asks again */
			LOG(s, EVCS_LOG_WARNING, "start request on gun %d not answered: session open %s", rq->gun,
			    api->status_name(status));
		} else {
			struct gun *g = &s->guns[rq->gun - 1];
			gun_close_order(g);
			memcpy(g->trade_no, rq->trade_no, sizeof g->trade_no);
			g->session_id = r->session_id;
			send_start_auth(s, rq, 1, 0);
		}
	}
	req_put(rq);
}

static void start_authorised(int status, const evcs_auth_result_info_t *a, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	if (s->closed)
		goto out;
	if (status != EVCS_OK || !a || a->result == EVCS_AUTH_UNAVAILABLE) {
		/* no verdict: stay silent rather than refuse with an invented reason; the pile retries */
		LOG(s, EVCS_LOG_WARNING, "start request on gun %d not answered: authorisation %s", rq->gun,
		    status != EVCS_OK ? api->status_name(status) : "unavailable");
		goto out;
	}
	int result = a->result;
	/* The PIN is checked before anything about the account is told (a wrong PIN learns only
	 * that the pile is disabled): whenever the card is known and the pile asked for it. */
	if (rq->start_mode == 1 && rq->need_password && result != EVCS_AUTH_PILE_DISABLED &&
	    (a->card_id > 0 || a->pin_hash) && !pin_matches(a->pin_hash, rq->password))
		result = EVCS_AUTH_BAD_PIN;
	if (result != EVCS_AUTH_ACCEPTED) {
		LOG(s, EVCS_LOG_INFO, "start on gun %d refused (%s)", rq->gun,
		    result == EVCS_AUTH_BAD_PIN ? (a->pin_hash ? "wrong password" : "no PIN on file")
						: (a->reason ? a->reason : "refused"));
		send_start_auth(s, rq, 0, fail_code(result));
		goto out;
	}
	snprintf(rq->logical, sizeof rq->logical, "%s", a->logical_card ? a->logical_card : "");
	rq->balance = a->balance;
	rq->card_id = a->card_id;
	rq->driver_id = a->driver_id;
	char card[17];
	hex_of(rq->pcard, 8, card);
	evcs_session_open_t o = {.size = sizeof o,
				 .tenant_id = s->tenant,
				 .pile_id = s->pile_id,
				 .pile = s->pile,
				 .gun = rq->gun,
				 .trade_no = rq->trade_no,
				 .start_mode = rq->start_mode == 3 ? "vin" : "card",
				 .driver_id = rq->driver_id,
				 .card_id = rq->card_id,
				 .id_token = rq->start_mode == 3 ? rq->vin : card};
	int rc = api->session_open(s->y->p, &o, start_opened, rq);
	if (rc == EVCS_OK)
		return; /* rq travels on */
	LOG(s, EVCS_LOG_WARNING, "start request on gun %d not answered: session open %s", rq->gun,
	    api->status_name(rc));
out:
	req_put(rq);
}

void on_start_request(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_start_request *q)
{
	int gn = gun_no(q->gun);
	if (gn < 1 || gn > s->ngun) {
		if (!bit_test_set(s->warned_pile, f->type))
			LOG(s, EVCS_LOG_WARNING, "0x%02X for gun %s, but the pile announced %d gun(s); dropped",
			    f->type, q->gun, s->ngun);
		return;
	}
	struct req *rq = req_get(s, f->type, f->seq);
	if (!rq)
		return;
	rq->gun = gn;
	rq->start_mode = q->start_mode;
	rq->need_password = q->need_password;
	memcpy(rq->password, q->password_md5, sizeof rq->password);
	memcpy(rq->pcard, q->card, 8);
	evcs_ykc_vin_text(q->vin, true, rq->vin);
	if (f->type == 0xA1)
		memcpy(rq->parallel_no, q->parallel_no, sizeof rq->parallel_no);
	if (next_trade(s, rq->gun, rq->trade_no) < 0) {
		LOG(s, EVCS_LOG_WARNING, "trade-number counter exhausted this second; start request dropped");
		req_put(rq);
		return;
	}
	char card[17];
	hex_of(q->card, 8, card);
	const char *mode = q->start_mode == 1 ? "card" : q->start_mode == 3 ? "vin" : "account";
	evcs_field_t fl[] = {EVCS_FS("trade_no", rq->trade_no), EVCS_FS("mode", mode),
			     EVCS_FS("card", q->start_mode == 1 ? card : ""), EVCS_FS("vin", rq->vin),
			     EVCS_FI("driver_id", 0)};
	if (publish(s, EVCS_EV_SESSION_START, rq->gun, fl, 5) == EVCS_VETO) {
		LOG(s, EVCS_LOG_INFO, "start on gun %d vetoed by policy", rq->gun);
		send_start_auth(s, rq, 0, FAIL_NOT_HERE);
		req_put(rq);
		return;
	}
	if (q->start_mode != 1 && q->start_mode != 3) {
		/* §4 0x31: account starts (mode 2) are not part of YKC 1.5/1.6 in practice */
		LOG(s, EVCS_LOG_INFO, "start on gun %d refused: start mode %u not supported", rq->gun, q->start_mode);
		send_start_auth(s, rq, 0, FAIL_NO_ACCOUNT);
		req_put(rq);
		return;
	}
	evcs_auth_request_t a = {.size = sizeof a,
				 .tenant_id = s->tenant,
				 .pile_id = s->pile_id,
				 .gun = rq->gun,
				 .id_kind = q->start_mode == 3 ? EVCS_IDK_VIN : EVCS_IDK_CARD,
				 .id_token = q->start_mode == 3 ? rq->vin : card};
	int rc = api->session_authorize(s->y->p, &a, start_authorised, rq);
	if (rc != EVCS_OK) {
		LOG(s, EVCS_LOG_WARNING, "start request on gun %d not answered: authorisation %s", rq->gun,
		    api->status_name(rc));
		req_put(rq);
	}
}

/* ---- transaction records (0x3B) ---------------------------------------------------------------- */

/* The evidence row of one 0x3B body. The core runs it in its close transaction, binding the
 * session's id at the EVCS_DB_REFID parameter; in this plain VALUES form it may write the
 * evidence of several closes as one multi-row INSERT. For a conflicting resend (another body
 * for a closed trade number, which the core keeps out of the session) the plugin writes it
 * itself with the session's id. (pile, trade number, digest) is unique: a repeat is EEXIST. */
static const char evidence_sql[] =
    "INSERT INTO ykc_records (tenant_id, session_id, pile_id, trade_no, gun_no, digest, raw_hex, "
    "sharp_price, sharp_loss_kwh, sharp_pile_amount, peak_price, peak_loss_kwh, peak_pile_amount, "
    "flat_price, flat_loss_kwh, flat_pile_amount, valley_price, valley_loss_kwh, valley_pile_amount, "
    "trade_flag, trade_time_ms, stop_reason, vin, physical_card, peer) VALUES (?, ?, ?, ?, ?, ?, ?, "
    "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
#define EVIDENCE_NPARAMS 24 /* every ? but the tenant's */

/* A record in flight: what its evidence row needs, kept until the core has answered. */
struct record_job {
	struct evcs_ykc_record rec;
	int gun;
	int64_t trade_time_ms;
	char digest[65];
	char raw[2 * EVCS_YKC_MAX_BODY + 1];
	char vin[18], pcard[17];
	char peer[64];
};

/* The start mode of a session the platform never saw open, from the record's trade flag. */
static const char *start_mode_of_flag(unsigned flag)
{
	switch (flag) {
	case 2: return "card";
	case 4: return "offline_card";
	case 5: return "vin";
	default: return "app";
	}
}

static int body_digest(const uint8_t *body, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_Digest(body, len, md, &n, EVP_sha256(), NULL) || n != 32)
		return -1;
	static const char hx[] = "0123456789abcdef";
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hx[md[i] >> 4];
		out[2 * i + 1] = hx[md[i] & 15];
	}
	out[64] = 0;
	return 0;
}

/* The evidence statement's parameters (the tenant is bound by the core); session is
 * EVCS_DB_REFID(0) inside the close, the session's id after it. */
static size_t evidence_params(const struct sess *s, const struct record_job *j, evcs_db_param_t session,
			      evcs_db_param_t ev[EVIDENCE_NPARAMS])
{
	const struct evcs_ykc_record *rec = &j->rec;
	const uint32_t price[4] = {rec->sharp_price, rec->peak_price, rec->flat_price, rec->valley_price};
	const uint32_t loss[4] = {rec->sharp_loss_kwh, rec->peak_loss_kwh, rec->flat_loss_kwh,
				  rec->valley_loss_kwh};
	const uint32_t amount[4] = {rec->sharp_amount, rec->peak_amount, rec->flat_amount, rec->valley_amount};
	size_t n = 0;
	ev[n++] = session;
	ev[n++] = EVCS_DB_INT(s->pile_id);
	ev[n++] = EVCS_DB_STR(rec->trade_no);
	ev[n++] = EVCS_DB_INT(j->gun);
	ev[n++] = EVCS_DB_STR(j->digest);
	ev[n++] = EVCS_DB_STR(j->raw);
	for (int p = 0; p < 4; p++) {
		ev[n++] = EVCS_DB_INT(price[p]);
		ev[n++] = EVCS_DB_INT(loss[p]);
		ev[n++] = EVCS_DB_INT(evcs_ykc_amount_to_money(amount[p]));
	}
	ev[n++] = EVCS_DB_INT(rec->trade_flag);
	ev[n++] = j->trade_time_ms ? EVCS_DB_INT(j->trade_time_ms) : EVCS_DB_NULL;
	ev[n++] = EVCS_DB_INT(rec->stop_reason);
	ev[n++] = EVCS_DB_STR(j->vin);
	ev[n++] = EVCS_DB_STR(j->pcard);
	ev[n++] = EVCS_DB_STR(j->peer);
	return n;
}

/* The record is durable (or refused as malformed): answer the pile and finish. */
static void record_answer(struct req *rq, int ok, int dup)
{
	struct sess *s = rq->s;
	struct ykc *y = s->y;
	if (!s->closed) {
		struct evcs_ykc_msg m;
		msg_init(&m, 0x40);
		memcpy(m.u.record_ack.trade_no, rq->trade_no, sizeof rq->trade_no);
		m.u.record_ack.result = ok ? 0 : 1;
		send_msg(s, &m, rq->seq, NULL);
	}
	if (ok) {
		api->metric_add(dup ? y->m_rec_dup : y->m_rec_stored, 1);
		if (!s->closed && rq->gun >= 1 && rq->gun <= s->ngun) {
			struct gun *g = &s->guns[rq->gun - 1];
			if (strcmp(g->trade_no, rq->trade_no) == 0)
				gun_close_order(g);
		}
		/* a closed order may free the pile for a waiting tariff */
		if (!dup && !s->closed)
			maybe_push_tariff(s);
	}
	req_put(rq);
}

static void conflict_evidence_done(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
				   void *ud)
{
	(void)res;
	(void)nres;
	struct req *rq = ud;
	struct sess *s = rq->s;
	if (status != EVCS_OK && status != EVCS_EEXIST) /* EEXIST: kept at an earlier resend */
		LOG(s, EVCS_LOG_WARNING, "record %s: the differing resend's evidence row was not written (%s%s%s)",
		    rq->trade_no, api->status_name(status), errmsg && *errmsg ? ": " : "", errmsg ? errmsg : "");
	/* the core's conflict row is durable either way: acknowledge, the pile stops resending */
	record_answer(rq, 1, 1);
}

static void record_closed(int status, const evcs_session_result_t *r, void *ud)
{
	struct req *rq = ud;
	struct sess *s = rq->s;
	struct ykc *y = s->y;
	if (status != EVCS_OK && status != EVCS_EINVAL) {
		/* not durable (EVCS_EUNAVAIL, EVCS_EBUSY, EVCS_ERR...): no 0x40, the pile resends (§1.6) */
		api->metric_add(y->m_rec_unacked, 1);
		api->log(y->p, EVCS_LOG_WARNING, s->tenant, s->pile[0] ? s->pile : NULL,
			 "record %s not stored (%s): not acknowledged, waiting for the resend", rq->trade_no,
			 api->status_name(status));
		req_put(rq);
		return;
	}
	if (status == EVCS_EINVAL) {
		LOG(s, EVCS_LOG_WARNING, "record %s refused by the core as malformed; answered as illegal",
		    rq->trade_no);
		record_answer(rq, 0, 0);
		return;
	}
	if (r && r->conflict && rq->job && r->session_id > 0 && EVCS_API_HAS(api, db_query)) {
		/* the core kept the first close; the differing body is still evidence: keep its row */
		evcs_db_param_t ev[EVIDENCE_NPARAMS];
		size_t n = evidence_params(s, rq->job, EVCS_DB_INT(r->session_id), ev);
		if (api->db_query(y->p, s->tenant, evidence_sql, ev, n, EVCS_DB_IDEMPOTENT, conflict_evidence_done,
				  rq) == EVCS_OK)
			return; /* rq travels on */
		LOG(s, EVCS_LOG_WARNING, "record %s: the differing resend's evidence row could not be queued",
		    rq->trade_no);
	}
	record_answer(rq, 1, r && (r->duplicate || r->conflict));
}

void on_record(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_record *rec)
{
	struct ykc *y = s->y;
	int gn = gun_no(rec->gun);
	if (gn < 1 || gn > MAX_GUNS) {
		LOG(s, EVCS_LOG_WARNING, "record %s with gun %s dropped", rec->trade_no, rec->gun);
		return;
	}
	struct record_job *j = calloc(1, sizeof *j);
	if (!j || body_digest(f->body, f->body_len, j->digest) < 0) {
		LOG(s, EVCS_LOG_ERR, "record %s: %s; not stored (the pile resends)", rec->trade_no,
		    j ? "no SHA-256 available" : "out of memory");
		free(j);
		return;
	}
	struct req *rq = req_get(s, 0x3B, f->seq);
	if (!rq) {
		free(j);
		return;
	}
	rq->job = j; /* freed by req_put */
	rq->gun = gn;
	memcpy(rq->trade_no, rec->trade_no, sizeof rq->trade_no);
	j->rec = *rec;
	j->gun = gn;
	j->trade_time_ms = cp56_to_ms(s, &rec->trade_time);
	hex_of(f->body, f->body_len, j->raw);
	evcs_ykc_vin_text(rec->vin, false, j->vin);
	hex_of(rec->physical_card, 8, j->pcard);
	snprintf(j->peer, sizeof j->peer, "%s", s->peer);
	int has_card = !all_zero(j->pcard);
	evcs_db_param_t ev[EVIDENCE_NPARAMS];
	size_t n = evidence_params(s, j, EVCS_DB_REFID(0), ev);

	evcs_session_close_t c = {.size = sizeof c,
				  .tenant_id = s->tenant,
				  .pile_id = s->pile_id,
				  .pile = s->pile,
				  .gun = gn,
				  .trade_no = rec->trade_no,
				  .start_ms = cp56_to_ms(s, &rec->start),
				  .end_ms = cp56_to_ms(s, &rec->end),
				  .meter_start = (int64_t)rec->meter_start_kwh,
				  .meter_stop = (int64_t)rec->meter_stop_kwh,
				  .total_kwh = rec->total_kwh,
				  .total_loss_kwh = rec->total_loss_kwh,
				  .has_periods = 1,
				  .pile_amount = evcs_ykc_amount_to_money(rec->total_amount_yuan),
				  .start_mode = start_mode_of_flag(rec->trade_flag),
				  /* the card for card sessions, the VIN for VIN sessions, else what there is */
				  .id_token = rec->trade_flag == 5 && j->vin[0] ? j->vin
					      : has_card		     ? j->pcard
					      : j->vin[0]		     ? j->vin
									     : NULL,
				  .stop_reason = rec->stop_reason,
				  .stop_reason_text = stop_reason_text(rec->stop_reason),
				  .digest = j->digest,
				  .evidence_sql = evidence_sql,
				  .evidence_params = ev,
				  .evidence_nparams = n};
	const uint32_t price[4] = {rec->sharp_price, rec->peak_price, rec->flat_price, rec->valley_price};
	const uint32_t kwh[4] = {rec->sharp_kwh, rec->peak_kwh, rec->flat_kwh, rec->valley_kwh};
	const uint32_t loss[4] = {rec->sharp_loss_kwh, rec->peak_loss_kwh, rec->flat_loss_kwh,
				  rec->valley_loss_kwh};
	const uint32_t amount[4] = {rec->sharp_amount, rec->peak_amount, rec->flat_amount, rec->valley_amount};
	for (int p = 0; p < 4; p++) {
		c.period[p].kwh = kwh[p];
		c.period[p].loss_kwh = loss[p];
		c.period[p].price = price[p];
		c.period[p].amount = evcs_ykc_amount_to_money(amount[p]);
	}
	int rc = api->session_close(y->p, &c, record_closed, rq);
	if (rc != EVCS_OK) {
		/* not queued (queue full, no database): unanswered, the pile resends */
		api->metric_add(y->m_rec_unacked, 1);
		LOG(s, EVCS_LOG_WARNING, "record %s not handed to the core (%s): not acknowledged",
		    rec->trade_no, api->status_name(rc));
		req_put(rq);
	}
}

/* §6.3: a short 0x3B is evidence, not a session: keep its bytes in an alarm, answer "illegal". */
void on_short_record(struct sess *s, const struct evcs_ykc_frame *f)
{
	char raw[2 * EVCS_YKC_MAX_BODY + 1];
	hex_of(f->body, f->body_len, raw);
	store_fmt(s, "alarm.raise",
		  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"pile\":\"%s\",\"gun\":0,\"code\":\"ykc.record.short\","
		  "\"severity\":\"major\",\"message\":\"transaction record shorter than 158 bytes (%zu)\","
		  "\"details\":{\"raw_hex\":\"%s\",\"body_length\":%zu}}",
		  (long long)s->tenant, (long long)s->pile_id, s->pile, f->body_len, raw, f->body_len);
	if (!s->y->nack_short_record || f->body_len < 16)
		return;
	struct evcs_ykc_msg m;
	msg_init(&m, 0x40);
	evcs_ykc_bcd_decode(f->body, 16, m.u.record_ack.trade_no);
	m.u.record_ack.result = 1;
	send_msg(s, &m, f->seq, NULL);
}
