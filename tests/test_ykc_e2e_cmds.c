/*
 * test_ykc_e2e_cmds.c: the device commands of the ykc plugin end to end (part of the
 * test_ykc_e2e program; set-up, helpers and the scenario's order are in test_ykc_e2e.c and
 * ykc_e2e.h): every command reachable through the bus with the pile's answer, a refusal or a
 * timeout, login and daily time sync of a 1.6 pile, and 1.6-only commands refused on 1.5.
 */
#include "ykc_e2e.h"
#include "testutil.h"

#include "codec.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int gun_no_of(const char *g) { return (g[0] - '0') * 10 + (g[1] - '0'); }

const char *sv(json_t *v)
{
	const char *s = json_string_value(v);
	return s ? s : "(not a string)";
}

json_t *jfield(json_t *root, const char *k) { return json_object_get(json_object_get(root, "fields"), k); }

/* Command to `pile`, then the frame of `type` it makes the server send to p. */
int cmd_to(struct ykc_pile *p, const char *pile, const char *name, int gun, const char *args,
	   uint8_t type, struct evcs_ykc_msg *m, struct ykc_rx *rx, struct cmd_res *cr)
{
	if (send_cmd(pile, name, gun, args, cr) != EVCS_OK)
		return -1;
	return ykc_pile_wait(p, type, 5000, m, rx);
}

/* The pile answers (echoing seq); waits for the done callback and returns its parsed JSON
 * (NULL when it never came or is not JSON). */
json_t *answer_and_wait(struct ykc_pile *p, const struct evcs_ykc_msg *a, const uint8_t seq[2],
			struct cmd_res *cr)
{
	if (ykc_pile_send(p, a, seq) <= 0 || !wait_cmd(cr, 5000))
		return NULL;
	return json_loads(cr->json, 0, NULL);
}

/* Seconds between a CP56 time and the chargers' wall clock now (UTC+8, utc_offset_min). */
static long long cp56_skew_s(const struct evcs_ykc_cp56 *t)
{
	struct tm tm;
	unsigned ms;
	evcs_ykc_cp56_to_tm(t, &tm, &ms);
	long long d = (long long)timegm(&tm) - ((long long)time(NULL) + 480 * 60);
	return d < 0 ? -d : d;
}

static void pile_result_msg(struct evcs_ykc_msg *m, uint8_t type, const char *pile, int result)
{
	memset(m, 0, sizeof *m);
	m->type = type;
	memcpy(m->u.pile_result.pile, pile, 15);
	m->u.pile_result.result = (uint8_t)result;
}

void test_v16_pile_login_and_daily_sync(void)
{
	struct evcs_ykc_msg m, r;
	CU_ASSERT_FATAL(ykc_pile_connect_from(&pc, "127.0.0.2", port16, PILE_C, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	ykc_msg_login(&pc, &m, 3, 16);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x02, 5000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x56, 3000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.time_sync.pile, PILE_C);
	CU_ASSERT(cp56_skew_s(&r.u.time_sync.time) <= 120);
	CU_ASSERT_EQUAL(n_c_online, 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM connectors WHERE pile_id = %lld", (long long)pile_c_id), 3);
	/* the periodic re-sync ("daily"; 3 s here) comes without being asked */
	pc.hb_ms = 800;
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x56, 8000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.time_sync.pile, PILE_C);
	CU_ASSERT(cp56_skew_s(&r.u.time_sync.time) <= 120);
	keepalive[2] = &pc;
}

void test_cmd_set_tariff(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	char args[1024], slots[256] = "";
	for (int i = 0; i < 48; i++)
		snprintf(slots + strlen(slots), sizeof slots - strlen(slots), "%s%d", i ? "," : "", i % 4);
	snprintf(args, sizeof args,
		 "{\"tariff\":{\"model\":\"0007\",\"sharp_elec_rate\":111110,\"sharp_service_rate\":22220,"
		 "\"peak_elec_rate\":33330,\"peak_service_rate\":44440,\"flat_elec_rate\":55550,"
		 "\"flat_service_rate\":66660,\"valley_elec_rate\":77770,\"valley_service_rate\":88880,"
		 "\"slots\":[%s]}}",
		 slots);
	/* refused first: the pile answers 0x57 result 0 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "set_tariff", 0, args, 0x58, &r, &rx, &cr) == 0);
	const struct evcs_ykc_tariff *t = &r.u.tariff;
	CU_ASSERT_STRING_EQUAL(t->pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(t->model, "0007");
	CU_ASSERT_EQUAL(t->sharp_elec_rate, 111110);
	CU_ASSERT_EQUAL(t->sharp_service_rate, 22220);
	CU_ASSERT_EQUAL(t->peak_elec_rate, 33330);
	CU_ASSERT_EQUAL(t->peak_service_rate, 44440);
	CU_ASSERT_EQUAL(t->flat_elec_rate, 55550);
	CU_ASSERT_EQUAL(t->flat_service_rate, 66660);
	CU_ASSERT_EQUAL(t->valley_elec_rate, 77770);
	CU_ASSERT_EQUAL(t->valley_service_rate, 88880);
	CU_ASSERT_EQUAL(t->loss_ratio, 0);
	int slots_ok = 1;
	for (int i = 0; i < 48; i++)
		slots_ok &= t->slots[i] == i % 4;
	CU_ASSERT(slots_ok);
	CU_ASSERT_FALSE(cr.done);
	pile_result_msg(&m, 0x57, PILE_C, 0);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x57");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 0);
	json_decref(j);
	/* again, without arguments (the model the pile now has on file), accepted */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "set_tariff", 0, NULL, 0x58, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.tariff.model, "0007");
	pile_result_msg(&m, 0x57, PILE_C, 1);
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x57");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "name")), "tariff_set_reply");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "pile")), PILE_C);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* the pile holds 0007 now: its 0x05 is answered "same" */
	memset(&m, 0, sizeof m);
	m.type = 0x05;
	memcpy(m.u.model.pile, PILE_C, 15);
	memcpy(m.u.model.model, "0007", 5);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x06, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.model.result, 0);
	/* and an idle report does not push the accepted model a second time: the heartbeat
	 * sent after it is answered with no 0x58 queued before its answer */
	keepalive[2] = NULL;
	pc.hb_ms = 0;
	ykc_pile_flush(&pc, 0);
	ykc_msg_realtime(&pc, &m, 1, "00000000000000000000000000000000", 2, 0, 0);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	ykc_msg_heartbeat(&pc, &m, 1);
	const uint8_t hseq[2] = {0x5A, 0x01};
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, hseq) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x04, 3000, NULL, &rx) == 0);
	CU_ASSERT(rx.seq[0] == 0x5A && rx.seq[1] == 0x01);
	CU_ASSERT(ykc_pile_wait(&pc, 0x58, 0, NULL, NULL) < 0);
	pc.hb_ms = 800;
	keepalive[2] = &pc;
}

void test_cmd_reboot(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "reboot", 0, "{\"control\":2}", 0x92, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.reboot.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.reboot.control, 2);
	pile_result_msg(&m, 0x91, PILE_C, 1);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x91");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "name")), "reboot_reply");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* default control 1 (now); the pile refuses */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "reboot", 0, NULL, 0x92, &r, &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.reboot.control, 1);
	pile_result_msg(&m, 0x91, PILE_C, 0);
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 0);
	json_decref(j);
}

void test_cmd_time_sync(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	ykc_pile_flush(&pc, 0x56);
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "time_sync", 0, NULL, 0x56, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.time_sync.pile, PILE_C);
	CU_ASSERT(cp56_skew_s(&r.u.time_sync.time) <= 120);
	memset(&m, 0, sizeof m);
	m.type = 0x55;
	memcpy(m.u.time_sync.pile, PILE_C, 15);
	m.u.time_sync.time = r.u.time_sync.time;
	char want[40];
	evcs_ykc_cp56_format(&r.u.time_sync.time, want, sizeof want);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x55");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "pile")), PILE_C);
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "time")), want);
	json_decref(j);
}

void test_cmd_read_realtime(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "read_realtime", 3, NULL, 0x12, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.pile_gun.pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(r.u.pile_gun.gun, "03");
	ykc_msg_realtime(&pc, &m, 3, "00000000000000000000000000000000", 2, 0, 0);
	m.u.realtime.gun_temp_c = 41;
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x13");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "gun")), "03");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "status")), 2);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "gun_temp_c")), 41);
	json_decref(j);
	CU_ASSERT_EQUAL(wait_count(2, 3000, "SELECT status FROM connectors WHERE pile_id = %lld AND gun_no = 3",
				   (long long)pile_c_id), 2);
}

void test_cmd_work_params(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "work_params", 0, "{\"disabled\":true,\"max_power_pct\":60}", 0x52, &r,
			       &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.work_params.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.work_params.disabled, 1);
	CU_ASSERT_EQUAL(r.u.work_params.max_power_pct, 60);
	pile_result_msg(&m, 0x51, PILE_C, 1);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x51");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* out of range: refused before anything is sent */
	CU_ASSERT_FATAL(send_cmd(PILE_C, "work_params", 0, "{\"max_power_pct\":150}", &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_EINVAL);
}

void test_cmd_upgrade(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "upgrade", 0,
			       "{\"server\":\"10.0.0.9\",\"port\":2121,\"user\":\"ftpuser\",\"password\":\"s3cret\","
			       "\"path\":\"/fw/ykc-2.0.bin\",\"pile_model\":1,\"power_kw\":120,\"control\":2,"
			       "\"timeout_min\":15}",
			       0x94, &r, &rx, &cr) == 0);
	const struct evcs_ykc_upgrade *u = &r.u.upgrade;
	CU_ASSERT_STRING_EQUAL(u->pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(u->server, "10.0.0.9");
	CU_ASSERT_EQUAL(u->port, 2121);
	CU_ASSERT_STRING_EQUAL(u->user, "ftpuser");
	CU_ASSERT_STRING_EQUAL(u->password, "s3cret");
	CU_ASSERT_STRING_EQUAL(u->path, "/fw/ykc-2.0.bin");
	CU_ASSERT_EQUAL(u->pile_model, 1);
	CU_ASSERT_EQUAL(u->power_kw, 120);
	CU_ASSERT_EQUAL(u->control, 2);
	CU_ASSERT_EQUAL(u->timeout_min, 15);
	memset(&m, 0, sizeof m);
	m.type = 0x93;
	memcpy(m.u.upgrade_reply.pile, PILE_C, 15);
	m.u.upgrade_reply.status = 0; /* success */
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x93");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "status")), 0);
	json_decref(j);
	/* status 2: the image does not match the pile model -> a failed answer */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "upgrade", 0, "{\"server\":\"10.0.0.9\",\"path\":\"/x.bin\"}", 0x94, &r,
			       &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.upgrade.control, 1);
	CU_ASSERT_EQUAL(r.u.upgrade.timeout_min, 10);
	m.u.upgrade_reply.status = 2;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "status")), 2);
	json_decref(j);
}

void test_cmd_card_lists(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	static const uint8_t c54[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54};
	static const uint8_t c55[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x55};
	/* 0x44 -> 0x43 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_sync", 0,
			       "{\"cards\":[[\"0000001000000573\",\"00000000D14B0A54\"],"
			       "[\"0000001000000574\",\"00000000d14b0a55\"]]}",
			       0x44, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.card_sync.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.card_sync.count, 2);
	CU_ASSERT_EQUAL(r.u.card_sync.n, 2);
	CU_ASSERT_STRING_EQUAL(r.u.card_sync.cards[0].logical_card, "0000001000000573");
	CU_ASSERT(memcmp(r.u.card_sync.cards[0].physical_card, c54, 8) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.card_sync.cards[1].logical_card, "0000001000000574");
	CU_ASSERT(memcmp(r.u.card_sync.cards[1].physical_card, c55, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x43;
	memcpy(m.u.card_sync_reply.pile, PILE_C, 15);
	m.u.card_sync_reply.result = 1; /* saved */
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x43");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* "failed, no storage space" is a failed answer */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_sync", 0, "{\"cards\":[[\"0000001000000573\",\"00000000D14B0A54\"]]}",
			       0x44, &r, &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.card_sync.n, 1);
	m.u.card_sync_reply.result = 0;
	m.u.card_sync_reply.fail_reason = 2;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "fail_reason")), 2);
	json_decref(j);
	/* 0x46 -> 0x45 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_clear", 0, "{\"cards\":[\"00000000D14B0A54\"]}", 0x46, &r, &rx,
			       &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.card_list.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.card_list.count, 1);
	CU_ASSERT(memcmp(r.u.card_list.cards[0], c54, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x45;
	memcpy(m.u.card_clear_reply.pile, PILE_C, 15);
	m.u.card_clear_reply.n = 1;
	memcpy(m.u.card_clear_reply.cards[0].physical_card, c54, 8);
	m.u.card_clear_reply.cards[0].cleared = 1;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x45");
	json_t *cards = jfield(j, "cards");
	CU_ASSERT_EQUAL(json_array_size(cards), 1);
	CU_ASSERT(strcasecmp(sv(json_array_get(json_array_get(cards, 0), 0)), "00000000D14B0A54") == 0);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_array_get(cards, 0), 1)), 1);
	json_decref(j);
	/* 0x48 -> 0x47 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_query", 0, "{\"cards\":[\"00000000D14B0A54\",\"00000000D14B0A55\"]}",
			       0x48, &r, &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.card_list.count, 2);
	CU_ASSERT(memcmp(r.u.card_list.cards[0], c54, 8) == 0);
	CU_ASSERT(memcmp(r.u.card_list.cards[1], c55, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x47;
	memcpy(m.u.card_query_reply.pile, PILE_C, 15);
	m.u.card_query_reply.n = 2;
	memcpy(m.u.card_query_reply.cards[0].physical_card, c54, 8);
	m.u.card_query_reply.cards[0].exists = 0;
	memcpy(m.u.card_query_reply.cards[1].physical_card, c55, 8);
	m.u.card_query_reply.cards[1].exists = 1;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x47");
	cards = jfield(j, "cards");
	CU_ASSERT_EQUAL(json_array_size(cards), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_array_get(cards, 0), 1)), 0);
	CU_ASSERT(strcasecmp(sv(json_array_get(json_array_get(cards, 1), 0)), "00000000D14B0A55") == 0);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_array_get(cards, 1), 1)), 1);
	json_decref(j);
}

void test_cmd_ground_lock(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "ground_lock", 2, "{\"action\":\"lower\"}", 0x62, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.ground_lock_command.pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(r.u.ground_lock_command.gun, "02");
	CU_ASSERT_EQUAL(r.u.ground_lock_command.action, 0xFF);
	memset(&m, 0, sizeof m);
	m.type = 0x63;
	memcpy(m.u.ground_lock_reply.pile, PILE_C, 15);
	memcpy(m.u.ground_lock_reply.gun, "02", 3);
	m.u.ground_lock_reply.result = 1;
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x63");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "gun")), "02");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* raise (gun from the args), the lock fails */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "ground_lock", 0, "{\"gun\":1,\"action\":\"raise\"}", 0x62, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.ground_lock_command.gun, "01");
	CU_ASSERT_EQUAL(r.u.ground_lock_command.action, 0x55);
	memcpy(m.u.ground_lock_reply.gun, "01", 3);
	m.u.ground_lock_reply.result = 0;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	json_decref(j);
}

void test_cmd_qr_prefix(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	const char *prefix = "https://q.example.com/c?no=";
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "qr_prefix", 0, "{\"qr_format\":1,\"prefix\":\"https://q.example.com/c?no=\"}",
			       0xF0, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.qr_prefix.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.qr_prefix.qr_format, 1);
	CU_ASSERT_EQUAL(r.u.qr_prefix.prefix_len, strlen(prefix));
	CU_ASSERT_STRING_EQUAL(r.u.qr_prefix.prefix, prefix);
	pile_result_msg(&m, 0xF1, PILE_C, 1);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0xF1");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "name")), "qr_prefix_reply");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
}

void test_cmd_balance_update(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	static const uint8_t c54[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54};
	/* 123.45 yuan = 12345000 core units = 12345 on the wire (0.01 yuan) */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "balance_update", 1,
			       "{\"balance\":12345000,\"physical_card\":\"00000000D14B0A54\"}", 0x42, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.balance_update.pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(r.u.balance_update.gun, "01");
	CU_ASSERT_EQUAL(r.u.balance_update.balance_yuan, 12345);
	CU_ASSERT(memcmp(r.u.balance_update.physical_card, c54, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x41;
	memcpy(m.u.balance_reply.pile, PILE_C, 15);
	memcpy(m.u.balance_reply.physical_card, c54, 8);
	m.u.balance_reply.result = 0; /* updated */
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x41");
	CU_ASSERT(strcasecmp(sv(jfield(j, "physical_card")), "00000000D14B0A54") == 0);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 0);
	json_decref(j);
	/* "wrong card" is a failed answer */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "balance_update", 2, "{\"balance\":1000}", 0x42, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.balance_update.gun, "02");
	CU_ASSERT_EQUAL(r.u.balance_update.balance_yuan, 1);
	m.u.balance_reply.result = 2;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 2);
	json_decref(j);
}

void test_cmd_unanswered_times_out(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	/* command_timeout_ms = 2000; the bus's own timeout (20 s) is not what ends it */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "reboot", 0, NULL, 0x92, &r, &rx, &cr) == 0);
	CU_ASSERT_FATAL(wait_cmd(&cr, 10000));
	CU_ASSERT_EQUAL(cr.status, EVCS_ETIMEDOUT);
	json_t *j = json_loads(cr.json, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "error"));
	json_decref(j);
	/* a late answer is ignored and the link stays up */
	pile_result_msg(&m, 0x91, PILE_C, 1);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, rx.seq) > 0);
	keepalive[2] = NULL;
	pc.hb_ms = 0;
	ykc_msg_heartbeat(&pc, &m, 3);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x04, 3000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.heartbeat_reply.gun, "03");
	pc.hb_ms = 800;
	keepalive[2] = &pc;
}

void test_cmd_v16_only_on_v15(void)
{
	struct cmd_res cr;
	CU_ASSERT_FATAL(send_cmd(PILE_A, "qr_prefix", 0, "{\"qr_format\":0,\"prefix\":\"x\"}", &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, "not_supported"));
	CU_ASSERT_FATAL(send_cmd(PILE_A, "parallel_start", 1,
				 "{\"balance\":1000000,\"logical_card\":\"0000001000000573\"}", &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_ENOTSUP);
	/* nothing went to the pile, and no session was opened for it */
	CU_ASSERT(ykc_pile_wait(&pa2, 0xF0, 300, NULL, NULL) < 0);
	CU_ASSERT(ykc_pile_wait(&pa2, 0xA4, 0, NULL, NULL) < 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld AND state = 'starting' "
			     "AND gun_no = 1", (long long)pile_a_id), 0);
}
