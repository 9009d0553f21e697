/*
 * ykc_e2e.h: what the three files of the test_ykc_e2e program share (test_ykc_e2e.c: set-up, the
 * scenario's sessions, records, limits and faults; test_ykc_e2e_cmds.c: every device command;
 * test_ykc_e2e_links.c: bad links and hostile peers.)
 * One scenario in one process: the piles, the database and the in-process core are set up once
 * by test_ykc_e2e.c's suite_init and used by all three files' tests, in registration order.
 */
#ifndef EVCS_TEST_YKC_E2E_H
#define EVCS_TEST_YKC_E2E_H

#include "core.h"
#include "db.h"
#include "codec.h"
#include "ykc_pile.h"

#include <jansson.h>
#include <mysql.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define PILE_A "32010600019236"
#define PILE_B "32010600019237"
#define PILE_C "32010600019238"  /* 1.6, three guns, connects from 127.0.0.2 */
#define PILE_UNKNOWN "99999999999999"
#define PILE_FLOOD "88888888888888"

extern evcs_core_t core;
extern int core_up;
extern evcs_db_config_t cfg;
extern MYSQL *my;
extern char conf_path[256];
extern int port15, port16;
extern int64_t tenant_id, pile_a_id, pile_b_id, pile_c_id, tariff_id;
extern struct ykc_pile pa, pb, pa2, pc;
extern struct ykc_pile *keepalive[4];
extern int n_online_ev, n_offline_ev;
extern char trade1[33];
extern int64_t session1;
extern int n_c_gun_status, n_c_fault, n_c_online, n_c_offline;
extern char c_fault_frame[8];
extern long long c_fault_code;
extern int c_fault_gun;

struct closed_count {
	char trade[33];
	int closed, stopped;
};

struct cmd_res {
	int done;
	int status;
	char json[2048];
};

/* the loop and the database */
void pump(void *ud);
void run_ms(int ms);
int db_reconnect(void);
int sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long long vqint(const char *fmt, va_list ap);
long long qint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long long wait_count(long long want, int timeout_ms, const char *fmt, ...);
int qstr(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* bus counters */
int on_bus(const evcs_event_t *ev, void *ud);
int on_bus_c(const evcs_event_t *ev, void *ud);
struct closed_count *closed_of(const char *trade);
int on_bus_closed(const evcs_event_t *ev, void *ud);
int n_closed(const char *trade);
int wait_int(const int *counter, int want, int timeout_ms);
long long metric(const char *name);
/* commands through the bus */
void cmd_done(int status, const char *json, void *ud);
int send_cmd(const char *pile, const char *name, int gun, const char *args, struct cmd_res *r);
int wait_cmd(struct cmd_res *r, int ms);
const char *env(const char *k);

/* test_ykc_e2e_cmds.c: helpers also used by the parallel-charging tests */
int gun_no_of(const char *g);
const char *sv(json_t *v);
json_t *jfield(json_t *root, const char *k);
/* Command to `pile`, then the frame of `type` it makes the server send to p. */
int cmd_to(struct ykc_pile *p, const char *pile, const char *name, int gun, const char *args,
	   uint8_t type, struct evcs_ykc_msg *m, struct ykc_rx *rx, struct cmd_res *cr);
json_t *answer_and_wait(struct ykc_pile *p, const struct evcs_ykc_msg *a, const uint8_t seq[2],
			struct cmd_res *cr);
/* test_ykc_e2e_cmds.c: tests */
void test_v16_pile_login_and_daily_sync(void);
void test_cmd_set_tariff(void);
void test_cmd_reboot(void);
void test_cmd_time_sync(void);
void test_cmd_read_realtime(void);
void test_cmd_work_params(void);
void test_cmd_upgrade(void);
void test_cmd_card_lists(void);
void test_cmd_ground_lock(void);
void test_cmd_qr_prefix(void);
void test_cmd_balance_update(void);
void test_cmd_unanswered_times_out(void);
void test_cmd_v16_only_on_v15(void);

/* test_ykc_e2e.c: parallel charging state and a frame followed by a barrier (heartbeat) */
extern char par_trade[4][33];
int send_then_barrier(struct ykc_pile *p, int slot, const struct evcs_ykc_msg *m, uint8_t enc,
		      const uint8_t mseq[2], const uint8_t hseq[2]);

/* test_ykc_e2e_links.c */
void test_encrypted_frame_dropped(void);
void test_fault_frames_stored(void);
void test_half_open_pile_times_out(void);
void test_per_address_cap(void);
void test_failed_login_limit(void);
void test_offline_after_silence(void);

#endif
