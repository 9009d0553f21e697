/*
 * test_ykc_e2e_links.c: the ykc plugin over bad links and hostile peers (part of the test_ykc_e2e
 * program; set-up, helpers and the scenario's order are in test_ykc_e2e.c and ykc_e2e.h):
 * encrypted frames dropped, fault and ground-lock frames stored and published, half-open
 * connections timed out, the per-address connection cap, the failed-login limit, and offline
 * after silence.
 */
#include "ykc_e2e.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void test_encrypted_frame_dropped(void)
{
	const char *d13 = "evcs_ykc_frames_in_total{type=\"0x13\",outcome=\"dropped\"}";
	const char *d03 = "evcs_ykc_frames_in_total{type=\"0x03\",outcome=\"dropped\"}";
	long long b13 = metric(d13), b03 = metric(d03);
	int gs = n_c_gun_status;
	struct evcs_ykc_msg m;
	/* gun 1 is idle (2); an encrypted "fault" report must change nothing */
	ykc_msg_realtime(&pc, &m, 1, "00000000000000000000000000000000", 1, 0, 0);
	m.u.realtime.hw_fault = 0x0400;
	const uint8_t m1[2] = {0xE1, 0x01}, h1[2] = {0xE1, 0x02};
	CU_ASSERT_EQUAL(send_then_barrier(&pc, 2, &m, 0x01, m1, h1), 0);
	/* an encrypted heartbeat gets no answer (the same frame in clear does, as the barrier) */
	ykc_msg_heartbeat(&pc, &m, 2);
	const uint8_t m2[2] = {0xE2, 0x01}, h2[2] = {0xE2, 0x02};
	CU_ASSERT_EQUAL(send_then_barrier(&pc, 2, &m, 0x01, m2, h2), 0);
	CU_ASSERT_EQUAL(metric(d13), b13 + 1);
	CU_ASSERT_EQUAL(metric(d03), b03 + 1);
	CU_ASSERT_EQUAL(n_c_gun_status, gs);
	CU_ASSERT(ykc_pile_is_open(&pc));
	CU_ASSERT_STRING_EQUAL(evcs_bus_pile_owner(core.bus, PILE_C, NULL), "ykc");
	CU_ASSERT_EQUAL(qint("SELECT status FROM connectors WHERE pile_id = %lld AND gun_no = 1", (long long)pile_c_id),
			2);
}

static void abort_msg(struct evcs_ykc_msg *m, uint8_t type, const char *trade, const char *gun, int reason,
		      int fault, int error)
{
	memset(m, 0, sizeof *m);
	m->type = type;
	memcpy(m->u.abort_.trade_no, trade, 33);
	memcpy(m->u.abort_.pile, PILE_C, 15);
	memcpy(m->u.abort_.gun, gun, 3);
	m->u.abort_.reason = (uint8_t)reason;
	m->u.abort_.fault = (uint16_t)fault;
	m->u.abort_.error = (uint8_t)error;
}

void test_fault_frames_stored(void)
{
	struct evcs_ykc_msg m;
	const char *zeros = "00000000000000000000000000000000";
	int f0 = n_c_fault;
	/* 0x61 ground-lock status: stored, not a fault */
	memset(&m, 0, sizeof m);
	m.type = 0x61;
	memcpy(m.u.ground_lock_status.pile, PILE_C, 15);
	memcpy(m.u.ground_lock_status.gun, "02", 3);
	m.u.ground_lock_status.lock_state = 0x55;
	m.u.ground_lock_status.space_state = 0xFF;
	m.u.ground_lock_status.battery_pct = 80;
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	/* 0x21 charger abort during the parallel order on gun 2 */
	abort_msg(&m, 0x21, par_trade[2], "02", 1, 0x0102, 3);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_EQUAL(wait_int(&n_c_fault, f0 + 1, 3000), f0 + 1);
	CU_ASSERT_STRING_EQUAL(c_fault_frame, "0x21");
	CU_ASSERT_EQUAL(c_fault_code, 0x0102);
	CU_ASSERT_EQUAL(c_fault_gun, 2);
	/* 0x1D BMS abort outside an order (trade number zeros) */
	abort_msg(&m, 0x1D, zeros, "01", 2, 0x0201, 1);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_EQUAL(wait_int(&n_c_fault, f0 + 2, 3000), f0 + 2);
	CU_ASSERT_STRING_EQUAL(c_fault_frame, "0x1D");
	CU_ASSERT_EQUAL(c_fault_code, 0x0201);
	CU_ASSERT_EQUAL(c_fault_gun, 1);
	/* 0x1B BMS error on gun 1's order */
	memset(&m, 0, sizeof m);
	m.type = 0x1B;
	memcpy(m.u.bms_error.trade_no, par_trade[1], 33);
	memcpy(m.u.bms_error.pile, PILE_C, 15);
	memcpy(m.u.bms_error.gun, "01", 3);
	m.u.bms_error.error_bits[0] = 0x05;
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_EQUAL(wait_int(&n_c_fault, f0 + 3, 3000), f0 + 3);
	CU_ASSERT_STRING_EQUAL(c_fault_frame, "0x1B");
	/* exactly three faults: the 0x61 before them published none */
	CU_ASSERT_EQUAL(n_c_fault, f0 + 3);
	/* every frame is in audit_log (batched: within about a second) */
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.ground_lock_status' "
				   "AND object_type = 'pile' AND object_id = '" PILE_C "' AND actor = 'plugin:ykc'"),
			1);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.fields.lock_state') FROM audit_log WHERE "
			     "action = 'pile_event.ground_lock_status' AND object_id = '" PILE_C "'"), 0x55);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.fields.battery_pct') FROM audit_log WHERE "
			     "action = 'pile_event.ground_lock_status' AND object_id = '" PILE_C "'"), 80);
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.charger_abort' "
				   "AND object_type = 'session' AND object_id = '%s'", par_trade[2]),
			1);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.fields.fault') FROM audit_log WHERE "
			     "action = 'pile_event.charger_abort' AND object_id = '%s'", par_trade[2]), 0x0102);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.gun') FROM audit_log WHERE "
			     "action = 'pile_event.charger_abort' AND object_id = '%s'", par_trade[2]), 2);
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.bms_abort' "
				   "AND object_type = 'pile' AND object_id = '" PILE_C "'"),
			1);
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.bms_error' "
				   "AND object_type = 'session' AND object_id = '%s'", par_trade[1]),
			1);
	char frame[16];
	qstr(frame, sizeof frame, "SELECT JSON_VALUE(details, '$.frame') FROM audit_log WHERE "
	     "action = 'pile_event.bms_error' AND object_id = '%s'", par_trade[1]);
	CU_ASSERT_STRING_EQUAL(frame, "0x1B");
}

void test_half_open_pile_times_out(void)
{
	/* pile C sends half a frame and goes silent (a dead mobile link): offline_after_ms (3 s)
	 * closes the server side, the pile is reported offline and its claim released */
	keepalive[2] = NULL;
	pc.hb_ms = 0;
	struct evcs_ykc_msg m;
	uint8_t fr[EVCS_YKC_MAX_FRAME];
	ykc_msg_heartbeat(&pc, &m, 1);
	int n = ykc_pile_build(&pc, &m, NULL, fr, sizeof fr);
	CU_ASSERT_FATAL(n > 8);
	CU_ASSERT_FATAL(ykc_pile_send_raw(&pc, fr, 6) == 0);
	CU_ASSERT(ykc_pile_wait_closed(&pc, 10000));
	ykc_pile_close(&pc);
	CU_ASSERT_EQUAL(wait_int(&n_c_offline, 1, 2000), 1);
	CU_ASSERT_PTR_NULL(evcs_bus_pile_owner(core.bus, PILE_C, NULL));
	CU_ASSERT_EQUAL(wait_count(0, 3000, "SELECT online FROM pile_presence WHERE pile_id = %lld",
				   (long long)pile_c_id), 0);
}

/* ---- connection limits ------------------------------------------------------------------------ */

void test_per_address_cap(void)
{
	/* max_conns_per_addr = 4: the fifth concurrent connection from 127.0.0.3 is closed at once */
	struct ykc_pile f[5], other;
	struct evcs_ykc_msg m, r;
	long long refused = metric("evcs_connections_refused_total");
	for (int i = 0; i < 4; i++)
		CU_ASSERT_FATAL(ykc_pile_connect_from(&f[i], "127.0.0.3", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
						      NULL) == 0);
	CU_ASSERT_FATAL(ykc_pile_connect_from(&f[4], "127.0.0.3", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
					      NULL) == 0);
	CU_ASSERT(ykc_pile_wait_closed(&f[4], 1000));
	/* the four accepted before it are still open: it was not the login timeout that closed it */
	for (int i = 0; i < 4; i++)
		CU_ASSERT(ykc_pile_is_open(&f[i]));
	CU_ASSERT_EQUAL(metric("evcs_connections_refused_total"), refused + 1);
	ykc_pile_close(&f[4]);
	/* another address is not affected */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&other, "127.0.0.7", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
					      NULL) == 0);
	ykc_msg_login(&other, &m, 1, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&other, &m, NULL) > 0);
	CU_ASSERT(ykc_pile_wait(&other, 0x02, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
	ykc_pile_close(&other);
	/* once the four are gone (login timeout), the address may connect again */
	for (int i = 0; i < 4; i++) {
		CU_ASSERT(ykc_pile_wait_closed(&f[i], 5000));
		ykc_pile_close(&f[i]);
	}
	CU_ASSERT_FATAL(ykc_pile_connect_from(&f[0], "127.0.0.3", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
					      NULL) == 0);
	ykc_msg_login(&f[0], &m, 1, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&f[0], &m, NULL) > 0);
	CU_ASSERT(ykc_pile_wait(&f[0], 0x02, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
	ykc_pile_close(&f[0]);
	CU_ASSERT_EQUAL(metric("evcs_connections_refused_total"), refused + 1);
}

void test_failed_login_limit(void)
{
	/* max_failed_logins_per_min = 3, counted per calendar minute: start early in a minute so
	 * the three refusals and the blocked connection fall into the same one */
	while (59 - time(NULL) % 60 < 15)
		run_ms(200);
	struct ykc_pile u;
	struct evcs_ykc_msg m, r;
	long long attempts = qint("SELECT attempts FROM unclaimed_piles WHERE serial = '" PILE_FLOOD "'");
	if (attempts < 0)
		attempts = 0;
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.4", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
						      NULL) == 0);
		ykc_msg_login(&u, &m, 1, 15);
		CU_ASSERT_FATAL(ykc_pile_send(&u, &m, NULL) > 0);
		CU_ASSERT_FATAL(ykc_pile_wait(&u, 0x02, 3000, &r, NULL) == 0);
		CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
		CU_ASSERT(ykc_pile_wait_closed(&u, 3000));
		ykc_pile_close(&u);
	}
	CU_ASSERT_EQUAL(wait_count(attempts + 3, 3000,
				   "SELECT attempts FROM unclaimed_piles WHERE serial = '" PILE_FLOOD "'"),
			attempts + 3);
	/* the fourth connection is refused before its login is read: no answer, no lookup */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.4", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	ykc_msg_login(&u, &m, 1, 15);
	(void)ykc_pile_send(&u, &m, NULL); /* may already fail: the server closed it */
	CU_ASSERT(ykc_pile_wait_closed(&u, 3000));
	CU_ASSERT(ykc_pile_wait(&u, 0x02, 0, NULL, NULL) < 0);
	ykc_pile_close(&u);
	/* also on the other listener */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.4", port16, PILE_FLOOD, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	CU_ASSERT(ykc_pile_wait_closed(&u, 3000));
	ykc_pile_close(&u);
	run_ms(200);
	CU_ASSERT_EQUAL(qint("SELECT attempts FROM unclaimed_piles WHERE serial = '" PILE_FLOOD "'"), attempts + 3);
	/* another address still gets its (refused) login answered */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.5", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	ykc_msg_login(&u, &m, 1, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&u, &m, NULL) > 0);
	CU_ASSERT(ykc_pile_wait(&u, 0x02, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
	ykc_pile_close(&u);
}

void test_offline_after_silence(void)
{
	/* pile B stops talking: offline after offline_after_ms (3 s) */
	keepalive[1] = NULL;
	pb.hb_ms = 0;
	long long t0 = ykc_pile_now_ms();
	CU_ASSERT(ykc_pile_wait_closed(&pb, 8000));
	CU_ASSERT(ykc_pile_now_ms() - t0 >= 2000);
	ykc_pile_close(&pb);
	CU_ASSERT_EQUAL(n_offline_ev, 1);
	CU_ASSERT_PTR_NULL(evcs_bus_pile_owner(core.bus, PILE_B, NULL));
	CU_ASSERT_EQUAL(wait_count(0, 3000, "SELECT online FROM pile_presence WHERE pile_id = %lld",
				   (long long)pile_b_id), 0);
	/* and a command to it fails "offline" */
	struct cmd_res cr;
	CU_ASSERT_FATAL(send_cmd(PILE_B, "reboot", 0, NULL, &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_EOFFLINE);
}
