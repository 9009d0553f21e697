/*
 * plugins/ykc/handlers.c: the frames a YKC pile sends, after login. handle_frame is the
 * dispatcher (encryption, login-first, tolerance §6.3, pile-number check, pile.seen, metrics);
 * the handlers turn each frame into storage operations, bus events and answers:
 *   0x13 real-time data    gun status on change, meter readings (api->session_meter), the
 *                          §1.5 idle-during-order rule
 *   0x15..0x25, 0x61       BMS / fault frames to event.store, faults on the bus
 *   0x33 / 0xA3            remote-start answers (§1.4, including the late "plugged in" success)
 *   0x35 0x41.. 0x57 ..    answers to commands (commands.c holds the pending ones)
 * Login, heartbeat (conn.c), the billing-model frames (tariff.c), pile-initiated starts
 * 0x31/0xA1 and transaction records 0x3B (sessions.c) are dispatched from here.
 */
#include "ykc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gun *gun_of(struct sess *s, const char *g, uint8_t type)
{
	int n = gun_no(g);
	if (n < 1 || n > s->ngun) {
		if (!bit_test_set(s->warned_pile, type))
			LOG(s, EVCS_LOG_WARNING, "0x%02X for gun %s, but the pile announced %d gun(s); dropped",
			    type, g, s->ngun);
		return NULL;
	}
	return &s->guns[n - 1];
}

static void session_started_store(struct sess *s, int gun, const char *trade, int result, int reason)
{
	/* reason 5 (not plugged) is not final: the pile may still send a success 0x33 within 60 s
	 * of the 0x34 (ykc.md §1.4), so the session stays starting */
	store_fmt(s, "session.started",
		  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"trade_no\":\"%s\",\"result\":%d,"
		  "\"fail_reason\":%d,\"may_still_start\":%d}",
		  (long long)s->tenant, (long long)s->pile_id, gun, trade, result, reason,
		  result != 1 && reason == 5);
	evcs_field_t f[] = {EVCS_FS("trade_no", trade), EVCS_FI("result", result), EVCS_FI("reason", reason)};
	publish(s, EVCS_EV_SESSION_STARTED, gun, f, 3);
}

static void on_realtime(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *msg)
{
	const struct evcs_ykc_realtime *rt = &msg->u.realtime;
	struct gun *g = gun_of(s, rt->gun, f->type);
	if (!g)
		return;
	int gn = (int)(g - s->guns) + 1;
	int64_t now = now_ms();
	uint8_t st = rt->status <= 3 ? rt->status : 1;
	if (st != g->status || rt->plugged != g->plugged || rt->hw_fault != g->fault ||
	    rt->gun_returned != g->returned) {
		int prev = g->status == 0xFF ? -1 : g->status;
		store_fmt(s, "gun.status",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"status\":%u,\"plugged\":%u,"
			  "\"gun_returned\":%u,\"fault\":%u,\"ts_ms\":%lld}",
			  (long long)s->tenant, (long long)s->pile_id, gn, st, rt->plugged, rt->gun_returned,
			  rt->hw_fault, (long long)now);
		g->status = st;
		g->plugged = rt->plugged;
		g->returned = rt->gun_returned;
		g->fault = rt->hw_fault;
		evcs_field_t fl[] = {EVCS_FI("status", st), EVCS_FI("prev_status", prev),
				     EVCS_FI("plugged", rt->plugged), EVCS_FI("fault", rt->hw_fault)};
		publish(s, EVCS_EV_GUN_STATUS, gn, fl, 4);
	}
	int has_trade = !all_zero(rt->trade_no);
	if (st == 3 && has_trade) {
		if (!g->trade_no[0] || strcmp(g->trade_no, rt->trade_no) != 0) {
			/* an order we did not see start (pile restarted offline, or we did) */
			gun_close_order(g);
			memcpy(g->trade_no, rt->trade_no, sizeof g->trade_no);
		}
		g->idle_in_order = 0;
		if (!g->started) {
			g->started = 1;
			session_started_store(s, gn, g->trade_no, 1, 0);
		}
		int64_t amount = evcs_ykc_amount_to_money(rt->amount_yuan);
		evcs_meter_reading_t mr = {.size = sizeof mr, .tenant_id = s->tenant, .pile_id = s->pile_id,
					   .pile = s->pile, .gun = gn, .trade_no = g->trade_no, .ts_ms = now,
					   .kwh = rt->kwh, .amount = amount, .voltage_dv = rt->voltage_v,
					   .current_da = rt->current_a, .soc = rt->soc, .gun_temp_c = rt->gun_temp_c,
					   .batt_max_temp_c = rt->batt_max_temp_c, .remaining_min = rt->remaining_min};
		int rc = api->session_meter(s->y->p, &mr);
		if (rc != EVCS_OK && !s->meter_warned) {
			s->meter_warned = 1;
			LOG(s, EVCS_LOG_WARNING, "meter reading of gun %d not queued (%s); further ones not logged",
			    gn, api->status_name(rc));
		}
		evcs_field_t fl[] = {EVCS_FS("trade_no", rt->trade_no), EVCS_FI("voltage_dv", rt->voltage_v),
				     EVCS_FI("current_da", rt->current_a), EVCS_FI("kwh", rt->kwh),
				     EVCS_FI("amount", amount), EVCS_FI("soc", rt->soc),
				     EVCS_FI("gun_temp_c", rt->gun_temp_c)};
		publish(s, EVCS_EV_METER_SAMPLE, gn, fl, 7);
	} else if (st == 2 && g->trade_no[0] && g->started && !g->stopping) {
		/* §1.5: two idle reports during an order mark it abnormal */
		if (++g->idle_in_order >= 2) {
			LOG(s, EVCS_LOG_WARNING, "gun %d idle twice during order %s: marked abnormal", gn, g->trade_no);
			store_fmt(s, "session.stopped",
				  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"trade_no\":\"%s\",\"state\":\"abnormal\","
				  "\"stop_reason_text\":\"gun idle during the order\"}",
				  (long long)s->tenant, (long long)s->pile_id, g->trade_no);
			gun_close_order(g);
		}
	}
	struct pcmd *pc = NULL;
	for (int i = 0; i < MAX_PCMD; i++)
		if (s->pcmd[i].state == PC_SENT && s->pcmd[i].answer == 0x13 && s->pcmd[i].gun == gn)
			pc = &s->pcmd[i];
	if (pc) {
		if (pc->cmd)
			cmd_reply_json(pc->cmd, EVCS_OK, answer_json(msg, f->type, s->proto));
		pcmd_release(pc);
	}
	if (st == 2)
		maybe_push_tariff(s);
}

static void on_event_frame(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *m)
{
	/* BMS / fault frames: stored as JSON (the codec's rendering), faults on the bus */
	const char *trade = NULL, *gun = NULL;
	int code = 0;
	switch (f->type) {
	case 0x15: trade = m->u.bms_handshake.trade_no; gun = m->u.bms_handshake.gun; break;
	case 0x17: trade = m->u.bms_params.trade_no; gun = m->u.bms_params.gun; break;
	case 0x19: trade = m->u.bms_charge_end.trade_no; gun = m->u.bms_charge_end.gun; break;
	case 0x1B: trade = m->u.bms_error.trade_no; gun = m->u.bms_error.gun; break;
	case 0x1D:
	case 0x21:
		trade = m->u.abort_.trade_no;
		gun = m->u.abort_.gun;
		code = m->u.abort_.fault;
		break;
	case 0x23: trade = m->u.bms_demand.trade_no; gun = m->u.bms_demand.gun; break;
	case 0x25: trade = m->u.bms_info.trade_no; gun = m->u.bms_info.gun; break;
	case 0x61: gun = m->u.ground_lock_status.gun; code = m->u.ground_lock_status.alarm; break;
	default: return;
	}
	json_t *fields = evcs_ykc_json_fields(m);
	char *fj = json_dumps(fields, JSON_COMPACT);
	json_decref(fields);
	const char *name = evcs_ykc_type_name(f->type, s->proto);
	if (fj)
		store_fmt(s, "event.store",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"pile\":\"%s\",\"gun\":%d,\"frame\":\"0x%02X\","
			  "\"name\":\"%s\",\"trade_no\":\"%s\",\"fields\":%s}",
			  (long long)s->tenant, (long long)s->pile_id, s->pile, gun_no(gun), f->type,
			  name ? name : "?", trade ? trade : "", fj);
	if (f->type == 0x1B || f->type == 0x1D || f->type == 0x21) {
		char frame[8];
		snprintf(frame, sizeof frame, "0x%02X", f->type);
		evcs_field_t fl[] = {EVCS_FS("frame", frame), EVCS_FI("code", code),
				     EVCS_FS("detail", fj ? fj : "")};
		publish(s, EVCS_EV_PILE_FAULT, gun_no(gun), fl, 3);
	}
	free(fj);
}

/* -- remote start / stop answers -- */

static void on_remote_start_reply(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *m)
{
	const struct evcs_ykc_remote_start_reply *a = &m->u.remote_start_reply;
	struct gun *g = gun_of(s, a->gun, f->type);
	if (!g)
		return;
	int gn = (int)(g - s->guns) + 1;
	struct pcmd *pc = pcmd_match(s, f, gn, a->trade_no);
	int64_t sid = 0;
	if (pc) {
		sid = pc->session_id;
	} else if (a->result == 1 && g->late_trade[0] && strcmp(g->late_trade, a->trade_no) == 0 &&
		   now_ms() <= g->late_until_ms) {
		sid = g->late_session; /* §1.4: plugged in within 60 s after "not plugged" */
	} else {
		LOG(s, EVCS_LOG_INFO, "0x%02X for %s matches no pending start; ignored", f->type, a->trade_no);
		return;
	}
	session_started_store(s, gn, a->trade_no, a->result == 1, a->fail_reason);
	if (a->result == 1) {
		gun_close_order(g);
		memcpy(g->trade_no, a->trade_no, sizeof g->trade_no);
		g->session_id = sid;
		g->started = 1;
		g->late_trade[0] = 0;
	} else if (a->fail_reason == 5) {
		memcpy(g->late_trade, a->trade_no, sizeof g->late_trade);
		g->late_session = sid;
		g->late_until_ms = now_ms() + 60000;
	}
	if (pc) {
		if (pc->cmd) {
			json_t *o = answer_json(m, f->type, s->proto);
			json_object_set_new(o, "trade_no", json_string(a->trade_no));
			json_object_set_new(o, "session_id", json_integer(sid));
			json_object_set_new(o, "result", json_integer(a->result));
			json_object_set_new(o, "reason", json_integer(a->fail_reason));
			cmd_reply_json(pc->cmd, a->result == 1 ? EVCS_OK : EVCS_EREFUSED, o);
		}
		pcmd_release(pc);
	}
}

static void on_generic_answer(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_msg *m, int gun)
{
	struct pcmd *pc = pcmd_match(s, f, gun, NULL);
	if (!pc) {
		LOG(s, EVCS_LOG_DEBUG, "unsolicited 0x%02X ignored", f->type);
		return;
	}
	if (f->type == 0x57 && m->u.pile_result.result == 1) {
		memcpy(s->pile_model, s->tariff.model, sizeof s->pile_model);
		s->push_pending = 0; /* the pile has our model: an earlier refusal needs no retry */
	}
	if (pc->kind == PK_TARIFF && f->type == 0x57 && m->u.pile_result.result != 1)
		s->push_pending = 1;
	if (pc->cmd) {
		/* each answer's own "failed" encoding (ykc.md §4): the result byte sits at a different
		 * offset per layout, and 0x41/0x93 use 0 for success */
		int refused = 0;
		switch (f->type) {
		case 0x51: case 0x57: case 0x91: case 0xF1: refused = m->u.pile_result.result == 0; break;
		case 0x63: refused = m->u.ground_lock_reply.result == 0; break;
		case 0x35: refused = m->u.remote_stop_reply.result == 0; break;
		case 0x43: refused = m->u.card_sync_reply.result == 0; break;
		case 0x41: refused = m->u.balance_reply.result != 0; break;
		case 0x93: refused = m->u.upgrade_reply.status != 0; break;
		}
		cmd_reply_json(pc->cmd, refused ? EVCS_EREFUSED : EVCS_OK, answer_json(m, f->type, s->proto));
	}
	pcmd_release(pc);
}

/* ---- frame dispatch --------------------------------------------------------------------------- */

static int pile_offset(uint8_t type)
{
	switch (type) {
	case 0x13: case 0x15: case 0x17: case 0x19: case 0x1B: case 0x1D: case 0x21: case 0x23:
	case 0x25: case 0x33: case 0x3B: case 0xA3:
		return 16;
	default:
		return 0;
	}
}

void handle_frame(struct sess *s, const struct evcs_ykc_frame *f)
{
	struct ykc *y = s->y;
	s->crc = f->crc_order; /* §2.4: answer in the order the pile last used */
	if (f->enc != 0) {
		if (s->enc_logged++ < 3)
			LOG(s, EVCS_LOG_WARNING, "encrypted frame 0x%02X (flag %u) dropped: unsupported", f->type, f->enc);
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	if (!evcs_ykc_from_pile(f->type)) {
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	if (s->state != S_ONLINE && f->type != 0x01) {
		/* §1.2: nothing but a login before a login */
		if (s->prelogin_logged++ < 3)
			api->log(y->p, EVCS_LOG_INFO, 0, NULL, "0x%02X from %s before login dropped", f->type, s->peer);
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	struct evcs_ykc_msg m;
	evcs_ykc_decode_frame(f, s->state == S_ONLINE ? s->proto : EVCS_YKC_PROTO_16, &m, NULL);
	enum evcs_ykc_verdict v = evcs_ykc_tolerate(&y->tol, &m);
	if (m.status == EVCS_YKC_UNKNOWN_TYPE) {
		if (!bit_test_set(s->warned_unknown, f->type))
			LOG(s, EVCS_LOG_WARNING, "unknown frame type 0x%02X ignored%s", f->type,
			    f->type == 0x3D ? " (a YKC 1.7 transaction record: not supported by 1.5/1.6)" : "");
		count_frame(y, f->type, OUT_DROPPED);
		return;
	}
	if (v == EVCS_YKC_DROP) {
		if (!bit_test_set(s->warned_body, f->type))
			LOG(s, EVCS_LOG_WARNING, "0x%02X with a %zu-byte body lacks needed fields; dropped", f->type,
			    f->body_len);
		count_frame(y, f->type, OUT_BAD);
		return;
	}
	if (v == EVCS_YKC_ACT_WARN && !bit_test_set(s->warned_body, f->type))
		LOG(s, EVCS_LOG_WARNING, "0x%02X body is %zu bytes (layout %d); tolerated", f->type, f->body_len,
		    evcs_ykc_layout_size(f->type));
	if (s->state == S_ONLINE && f->type != 0x01) {
		int off = pile_offset(f->type);
		if (f->body_len >= (size_t)off + 7 && memcmp(f->body + off, s->pile_bcd, 7) != 0) {
			if (!bit_test_set(s->warned_pile, f->type))
				LOG(s, EVCS_LOG_WARNING, "0x%02X carries another pile number; dropped", f->type);
			count_frame(y, f->type, OUT_BAD);
			return;
		}
		int64_t now = now_ms();
		if (now - s->last_seen_store_ms >= y->seen_interval_ms) {
			s->last_seen_store_ms = now;
			store_fmt(s, "pile.seen", "{\"tenant_id\":%lld,\"pile_id\":%lld,\"ts_ms\":%lld}",
				  (long long)s->tenant, (long long)s->pile_id, (long long)now);
		}
	}
	if (v == EVCS_YKC_QUARANTINE) {
		count_frame(y, f->type, OUT_BAD);
		on_short_record(s, f);
		return;
	}
	count_frame(y, f->type, OUT_OK);
	switch (f->type) {
	case 0x01: on_login(s, f, &m.u.login); break;
	case 0x03: on_heartbeat(s, f, &m.u.heartbeat); break;
	case 0x05: on_model_verify(s, f, &m.u.model); break;
	case 0x09: on_model_request(s, f); break;
	case 0x13: on_realtime(s, f, &m); break;
	case 0x15: case 0x17: case 0x19: case 0x1B: case 0x1D: case 0x21: case 0x23: case 0x25: case 0x61:
		on_event_frame(s, f, &m);
		break;
	case 0x31: case 0xA1: on_start_request(s, f, &m.u.start_request); break;
	case 0x33: case 0xA3: on_remote_start_reply(s, f, &m); break;
	case 0x35: on_generic_answer(s, f, &m, gun_no(m.u.remote_stop_reply.gun)); break;
	case 0x3B: on_record(s, f, &m.u.record); break;
	case 0x63: on_generic_answer(s, f, &m, gun_no(m.u.ground_lock_reply.gun)); break;
	case 0x41: case 0x43: case 0x45: case 0x47: case 0x51: case 0x55: case 0x57: case 0x91: case 0x93:
	case 0xF1:
		on_generic_answer(s, f, &m, 0);
		break;
	default:
		LOG(s, EVCS_LOG_DEBUG, "0x%02X has no handler", f->type);
	}
}
