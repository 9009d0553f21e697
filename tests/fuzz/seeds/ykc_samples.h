/*
 * tests/fuzz/seeds/ykc_samples.h: one plausible message of every §4.1 frame type,
 * shared by tests/test_ykc_codec.c (round trips) and the fuzz seed generator.
 * Header-only (static functions); values stay inside the spec's ranges so the
 * decoded frames carry no warnings.
 */
#ifndef YKC_SAMPLES_H
#define YKC_SAMPLES_H

#include "codec.h"

#include <stdio.h>
#include <string.h>

static const uint8_t ykc_all_types[] = {
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x12, 0x13, 0x15, 0x17, 0x19, 0x1B,
	0x1D, 0x21, 0x23, 0x25, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x3B, 0x40, 0x41, 0x42,
	0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x51, 0x52, 0x55, 0x56, 0x57, 0x58, 0x61, 0x62,
	0x63, 0x91, 0x92, 0x93, 0x94, 0xA1, 0xA2, 0xA3, 0xA4, 0xF0, 0xF1,
};
#define YKC_NTYPES (sizeof(ykc_all_types) / sizeof(ykc_all_types[0]))

#define YKC_PILE "32010600019236"
#define YKC_TRADE "32010600019236012001061803423060"

static inline void ykc_cp(char *dst, const char *src) { strcpy(dst, src); }
static inline void ykc_bytes(uint8_t *dst, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (uint8_t)(seed + 7 * i);
}
static inline void ykc_time(struct evcs_ykc_cp56 *t, unsigned sec)
{
	/* 2024-05-01 08:30:ss, a Wednesday */
	t->ms = (uint16_t)(sec * 1000 + 250);
	t->minute = 30;
	t->hour = 8;
	t->mday = 1;
	t->wday = 3;
	t->month = 5;
	t->year = 24;
}

/* Fill m with a sample of `type`; `n` picks the card-list length (1 if 0). */
static inline void ykc_sample(uint8_t type, struct evcs_ykc_msg *m, unsigned n)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	if (n == 0)
		n = 1;
	switch (type) {
	case 0x01: {
		struct evcs_ykc_login *x = &m->u.login;
		ykc_cp(x->pile, YKC_PILE);
		x->pile_type = 0;
		x->gun_count = 2;
		x->protocol_version = 16;
		ykc_cp(x->program_version, "GV.95r13");
		x->network = 0;
		ykc_cp(x->sim, "898604D11722D0348606");
		x->carrier = 3;
		break;
	}
	case 0x02: case 0x51: case 0x57: case 0x91: case 0xF1:
		ykc_cp(m->u.pile_result.pile, YKC_PILE);
		m->u.pile_result.result = 1;
		if (type == 0x02)
			m->u.pile_result.result = 0;
		break;
	case 0x03:
		ykc_cp(m->u.heartbeat.pile, YKC_PILE);
		ykc_cp(m->u.heartbeat.gun, "01");
		m->u.heartbeat.gun_state = 1;
		break;
	case 0x04:
		ykc_cp(m->u.heartbeat_reply.pile, YKC_PILE);
		ykc_cp(m->u.heartbeat_reply.gun, "02");
		break;
	case 0x05: case 0x06: case 0x09:
		ykc_cp(m->u.model.pile, YKC_PILE);
		ykc_cp(m->u.model.model, "0100");
		m->u.model.result = type == 0x06 ? 1 : 0;
		break;
	case 0x0A: case 0x58: {
		struct evcs_ykc_tariff *x = &m->u.tariff;
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->model, "0102");
		x->sharp_elec_rate = 200000;
		x->sharp_service_rate = 60000;
		x->peak_elec_rate = 150000;
		x->peak_service_rate = 50000;
		x->flat_elec_rate = 100000;
		x->flat_service_rate = 40000;
		x->valley_elec_rate = 50000;
		x->valley_service_rate = 30000;
		for (int i = 0; i < 48; i++)
			x->slots[i] = (uint8_t)(i < 16 ? 3 : i < 20 ? 0 : i < 36 ? 1 : 2);
		break;
	}
	case 0x12: case 0x36:
		ykc_cp(m->u.pile_gun.pile, YKC_PILE);
		ykc_cp(m->u.pile_gun.gun, "01");
		break;
	case 0x13: {
		struct evcs_ykc_realtime *x = &m->u.realtime;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->status = 3;
		x->gun_returned = 0;
		x->plugged = 1;
		x->voltage_v = 3732;
		x->current_a = 1012;
		x->gun_temp_c = 34;
		ykc_bytes(x->gun_line_code, 8, 1);
		x->soc = 57;
		x->batt_max_temp_c = -5;
		x->charged_min = 42;
		x->remaining_min = 30;
		x->kwh = 88000;
		x->loss_kwh = 88000;
		x->amount_yuan = 93280;
		x->hw_fault = 0x1001;
		break;
	}
	case 0x15: {
		struct evcs_ykc_bms_handshake *x = &m->u.bms_handshake;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->bms_proto[0] = 1;
		x->bms_proto[1] = 1;
		x->battery_type = 3;
		x->rated_ah = 1500;
		x->rated_v = 3500;
		memcpy(x->maker, "CATL", 4);
		ykc_bytes(x->pack_no, 4, 9);
		x->mfg_year = 38;
		x->mfg_month = 6;
		x->mfg_day = 30;
		x->cycles = 0x012345;
		x->ownership = 1;
		memcpy(x->vin, "LSVAU2180N2183294", 17);
		ykc_bytes(x->bms_sw, 8, 3);
		break;
	}
	case 0x17: {
		struct evcs_ykc_bms_params *x = &m->u.bms_params;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->cell_max_v = 420;
		x->max_current_raw = 1500;
		x->rated_kwh = 750;
		x->max_total_v = 4500;
		x->max_temp_c = 60;
		x->soc_permille = 573;
		x->batt_v = 3700;
		x->out_v_max = 7500;
		x->out_v_min = 2000;
		x->out_i_max_raw = 1000;
		x->out_i_min_raw = 4000;
		break;
	}
	case 0x19: {
		struct evcs_ykc_bms_charge_end *x = &m->u.bms_charge_end;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->end_soc = 95;
		x->cell_min_v = 398;
		x->cell_max_v = 412;
		x->temp_min_c = 20;
		x->temp_max_c = 31;
		x->minutes = 55;
		x->out_kwh = 412;
		x->charger_no = 1;
		break;
	}
	case 0x1B:
		ykc_cp(m->u.bms_error.trade_no, YKC_TRADE);
		ykc_cp(m->u.bms_error.pile, YKC_PILE);
		ykc_cp(m->u.bms_error.gun, "01");
		m->u.bms_error.error_bits[1] = 0x04;
		m->u.bms_error.error_bits[6] = 0x10;
		break;
	case 0x1D: case 0x21:
		ykc_cp(m->u.abort_.trade_no, YKC_TRADE);
		ykc_cp(m->u.abort_.pile, YKC_PILE);
		ykc_cp(m->u.abort_.gun, "01");
		m->u.abort_.reason = 0x01;
		m->u.abort_.fault = 0x0100;
		m->u.abort_.error = 0x04;
		break;
	case 0x23: {
		struct evcs_ykc_bms_demand *x = &m->u.bms_demand;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->bms_v_req = 4000;
		x->bms_i_req_raw = 5960;
		x->mode = 2;
		x->bms_v_meas = 3980;
		x->bms_i_meas_raw = 3875;
		x->cell_max_raw = 344;
		x->soc = 60;
		x->remain_min = 25;
		x->out_v = 3990;
		x->out_i_raw = 2750;
		x->minutes = 12;
		break;
	}
	case 0x25: {
		struct evcs_ykc_bms_info *x = &m->u.bms_info;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->cell_max_no = 17;
		x->temp_max_c = 35;
		x->temp_max_point = 3;
		x->temp_min_c = 22;
		x->temp_min_point = 9;
		x->flags[0] = 0x00;
		x->flags[1] = 0x10;
		break;
	}
	case 0x31: case 0xA1: {
		struct evcs_ykc_start_request *x = &m->u.start_request;
		static const char vin[] = "LSVAU2180N2183294";
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->start_mode = 3;
		x->need_password = 0;
		for (int i = 0; i < 17; i++)
			x->vin[i] = (uint8_t)vin[16 - i];
		if (type == 0xA1) {
			x->parallel_role = 1;
			ykc_cp(x->parallel_no, "240501083015");
		}
		break;
	}
	case 0x32: case 0xA2: {
		struct evcs_ykc_start_auth *x = &m->u.start_auth;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		ykc_cp(x->logical_card, "0000001000000573");
		x->balance_yuan = 100000;
		x->auth_ok = 1;
		if (type == 0xA2)
			ykc_cp(x->parallel_no, "240501083015");
		break;
	}
	case 0x33: case 0xA3: {
		struct evcs_ykc_remote_start_reply *x = &m->u.remote_start_reply;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		x->result = 0;
		x->fail_reason = 5;
		if (type == 0xA3) {
			x->parallel_role = 0;
			ykc_cp(x->parallel_no, "240501083015");
		}
		break;
	}
	case 0x34: case 0xA4: {
		struct evcs_ykc_remote_start *x = &m->u.remote_start;
		static const uint8_t card[8] = { 0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54 };
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		ykc_cp(x->logical_card, "0000001000000573");
		memcpy(x->physical_card, card, 8);
		x->balance_yuan = 100000;
		if (type == 0xA4)
			ykc_cp(x->parallel_no, "240501083015");
		break;
	}
	case 0x35:
		ykc_cp(m->u.remote_stop_reply.pile, YKC_PILE);
		ykc_cp(m->u.remote_stop_reply.gun, "01");
		m->u.remote_stop_reply.result = 1;
		break;
	case 0x3B: {
		struct evcs_ykc_record *x = &m->u.record;
		ykc_cp(x->trade_no, YKC_TRADE);
		ykc_cp(x->pile, YKC_PILE);
		ykc_cp(x->gun, "01");
		ykc_time(&x->start, 15);
		ykc_time(&x->end, 45);
		x->end.hour = 9;
		x->flat_price = 90000;
		x->flat_kwh = 1650;
		x->flat_loss_kwh = 1650;
		x->flat_amount = 1485;
		x->peak_price = 200000;
		x->peak_kwh = 10000;
		x->peak_loss_kwh = 10000;
		x->peak_amount = 20000;
		x->meter_start_kwh = 123456789ull;
		x->meter_stop_kwh = 123468439ull;
		x->total_kwh = 11650;
		x->total_loss_kwh = 11650;
		x->total_amount_yuan = 21485;
		memcpy(x->vin, "LSVAU2180N2183294", 17);
		x->trade_flag = 1;
		ykc_time(&x->trade_time, 50);
		x->trade_time.hour = 9;
		x->stop_reason = 0x40;
		break;
	}
	case 0x40:
		ykc_cp(m->u.record_ack.trade_no, YKC_TRADE);
		m->u.record_ack.result = 0;
		break;
	case 0x41:
		ykc_cp(m->u.balance_reply.pile, YKC_PILE);
		ykc_bytes(m->u.balance_reply.physical_card, 8, 0xD1);
		m->u.balance_reply.result = 2;
		break;
	case 0x42:
		ykc_cp(m->u.balance_update.pile, YKC_PILE);
		ykc_cp(m->u.balance_update.gun, "01");
		ykc_bytes(m->u.balance_update.physical_card, 8, 0xD1);
		m->u.balance_update.balance_yuan = 4294967295u;
		break;
	case 0x43:
		ykc_cp(m->u.card_sync_reply.pile, YKC_PILE);
		m->u.card_sync_reply.result = 0;
		m->u.card_sync_reply.fail_reason = 2;
		break;
	case 0x44:
		ykc_cp(m->u.card_sync.pile, YKC_PILE);
		if (n > EVCS_YKC_SYNC_MAX)
			n = EVCS_YKC_SYNC_MAX;
		m->u.card_sync.n = m->u.card_sync.count = (uint8_t)n;
		for (unsigned i = 0; i < n; i++) {
			snprintf(m->u.card_sync.cards[i].logical_card, 17, "00000010000%05u", 573 + i);
			ykc_bytes(m->u.card_sync.cards[i].physical_card, 8, (uint8_t)(0x10 + i));
		}
		break;
	case 0x45:
		ykc_cp(m->u.card_clear_reply.pile, YKC_PILE);
		if (n > EVCS_YKC_CLEAR_REPLY_CAP)
			n = EVCS_YKC_CLEAR_REPLY_CAP;
		m->u.card_clear_reply.n = (uint8_t)n;
		for (unsigned i = 0; i < n; i++) {
			ykc_bytes(m->u.card_clear_reply.cards[i].physical_card, 8, (uint8_t)(0x20 + i));
			m->u.card_clear_reply.cards[i].cleared = (uint8_t)(i & 1);
			m->u.card_clear_reply.cards[i].fail_reason = (uint8_t)!(i & 1);
		}
		break;
	case 0x46: case 0x48: {
		unsigned max = type == 0x46 ? EVCS_YKC_CLEAR_MAX : EVCS_YKC_QUERY_MAX;
		ykc_cp(m->u.card_list.pile, YKC_PILE);
		if (n > max)
			n = max;
		m->u.card_list.n = m->u.card_list.count = (uint8_t)n;
		for (unsigned i = 0; i < n; i++)
			ykc_bytes(m->u.card_list.cards[i], 8, (uint8_t)(0x30 + i));
		break;
	}
	case 0x47:
		ykc_cp(m->u.card_query_reply.pile, YKC_PILE);
		if (n > EVCS_YKC_QUERY_REPLY_CAP)
			n = EVCS_YKC_QUERY_REPLY_CAP;
		m->u.card_query_reply.n = (uint8_t)n;
		for (unsigned i = 0; i < n; i++) {
			ykc_bytes(m->u.card_query_reply.cards[i].physical_card, 8, (uint8_t)(0x40 + i));
			m->u.card_query_reply.cards[i].exists = (uint8_t)(i & 1);
		}
		break;
	case 0x52:
		ykc_cp(m->u.work_params.pile, YKC_PILE);
		m->u.work_params.disabled = 0;
		m->u.work_params.max_power_pct = 80;
		break;
	case 0x55: case 0x56:
		ykc_cp(m->u.time_sync.pile, YKC_PILE);
		ykc_time(&m->u.time_sync.time, 15);
		break;
	case 0x61:
		ykc_cp(m->u.ground_lock_status.pile, YKC_PILE);
		ykc_cp(m->u.ground_lock_status.gun, "01");
		m->u.ground_lock_status.lock_state = 0x55;
		m->u.ground_lock_status.space_state = 0xFF;
		m->u.ground_lock_status.battery_pct = 88;
		m->u.ground_lock_status.alarm = 0;
		break;
	case 0x62:
		ykc_cp(m->u.ground_lock_command.pile, YKC_PILE);
		ykc_cp(m->u.ground_lock_command.gun, "02");
		m->u.ground_lock_command.action = 0xFF;
		break;
	case 0x63:
		ykc_cp(m->u.ground_lock_reply.pile, YKC_PILE);
		ykc_cp(m->u.ground_lock_reply.gun, "02");
		m->u.ground_lock_reply.result = 1;
		break;
	case 0x92:
		ykc_cp(m->u.reboot.pile, YKC_PILE);
		m->u.reboot.control = 2;
		break;
	case 0x93:
		ykc_cp(m->u.upgrade_reply.pile, YKC_PILE);
		m->u.upgrade_reply.status = 3;
		break;
	case 0x94: {
		struct evcs_ykc_upgrade *x = &m->u.upgrade;
		ykc_cp(x->pile, YKC_PILE);
		x->pile_model = 1;
		x->power_kw = 120;
		ykc_cp(x->server, "ftp.example.org");
		x->port = 21;
		ykc_cp(x->user, "pileuser");
		ykc_cp(x->password, "0123456789abcdef");
		ykc_cp(x->path, "/fw/ykc/dc120-v2.bin");
		x->control = 2;
		x->timeout_min = 15;
		break;
	}
	case 0xF0: {
		static const char prefix[] = "https://qr.example.com/gunDetail?no=";
		ykc_cp(m->u.qr_prefix.pile, YKC_PILE);
		m->u.qr_prefix.qr_format = 0;
		m->u.qr_prefix.prefix_len = (uint8_t)strlen(prefix);
		memcpy(m->u.qr_prefix.prefix, prefix, strlen(prefix));
		break;
	}
	}
}

#endif
