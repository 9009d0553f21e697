/*
 * plugins/ykc/commands.c: commands from the core to a claimed YKC pile (api->pile_claim ->
 * on_command) and the answers they wait for. Each command is one row of a table: its name,
 * whether it needs YKC 1.6, and a builder that checks the JSON arguments and fills the frame
 * (or handles the command itself: start, time_sync). The generic path then sends the frame,
 * keeps a pending answer (struct pcmd, at most MAX_PCMD per connection) and arms its timeout;
 * handlers.c matches the pile's answer (§1.3) and replies to the requester.
 * A remote start first opens the session with the core (api->session_open; the core takes the
 * tariff snapshot), then sends 0x34/0xA4; a stop marks the order stopping (§1.5) and records
 * who asked.
 */
#include "ykc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- commands (pending answers) ------------------------------------------------------------------ */

struct pcmd *pcmd_get(struct sess *s)
{
	for (int i = 0; i < MAX_PCMD; i++)
		if (s->pcmd[i].state == PC_FREE) {
			struct pcmd *pc = &s->pcmd[i];
			memset(pc, 0, sizeof *pc);
			pc->s = s;
			pc->state = PC_PREP;
			return pc;
		}
	return NULL;
}

void pcmd_release(struct pcmd *pc)
{
	if (pc->timer)
		api->timer_del(pc->timer);
	pc->timer = NULL;
	pc->cmd = NULL;
	pc->state = PC_FREE;
}

void cmd_reply_json(evcs_cmd_t *cmd, int status, json_t *o)
{
	char *js = json_dumps(o, JSON_COMPACT);
	api->command_reply(cmd, status, js ? js : "{}");
	free(js);
	json_decref(o);
}

void cmd_fail(evcs_cmd_t *cmd, int status, const char *msg)
{
	cmd_reply_json(cmd, status, json_pack("{s:s, s:s}", "error", api->status_name(status), "message", msg));
}

static void pcmd_timeout(void *ud)
{
	struct pcmd *pc = ud;
	struct sess *s = pc->s;
	pc->timer = NULL; /* one-shot timers free themselves */
	if (pc->kind == PK_START && pc->trade_no[0]) {
		LOG(s, EVCS_LOG_WARNING, "no answer to remote start %s: order closed", pc->trade_no);
		store_fmt(s, "session.stopped",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"trade_no\":\"%s\",\"state\":\"failed\","
			  "\"stop_reason_text\":\"no answer to the remote start\"}",
			  (long long)s->tenant, (long long)s->pile_id, pc->trade_no);
	} else if (pc->kind == PK_TARIFF) {
		s->push_pending = 1; /* retried at the next idle report */
	}
	if (pc->cmd)
		cmd_fail(pc->cmd, EVCS_ETIMEDOUT, "the pile did not answer in time");
	pcmd_release(pc);
}

void pcmd_arm(struct pcmd *pc, long long ms)
{
	if (pc->timer)
		api->timer_del(pc->timer);
	pc->timer = api->timer_add(pc->s->y->p, (unsigned)(ms > 0 ? ms : 60000), 0, pcmd_timeout, pc);
}

/* §1.3: match by the sequence bytes (either order), then by (answer type, gun, trade_no). */
struct pcmd *pcmd_match(struct sess *s, const struct evcs_ykc_frame *f, int gun, const char *trade)
{
	for (int i = 0; i < MAX_PCMD; i++) {
		struct pcmd *pc = &s->pcmd[i];
		if (pc->state == PC_SENT && pc->answer == f->type &&
		    ((pc->seq[0] == f->seq[0] && pc->seq[1] == f->seq[1]) ||
		     (pc->seq[0] == f->seq[1] && pc->seq[1] == f->seq[0])))
			return pc;
	}
	for (int i = 0; i < MAX_PCMD; i++) {
		struct pcmd *pc = &s->pcmd[i];
		if (pc->state == PC_SENT && pc->answer == f->type && (!gun || !pc->gun || pc->gun == gun) &&
		    (!trade || !pc->trade_no[0] || strcmp(trade, pc->trade_no) == 0))
			return pc;
	}
	return NULL;
}

/* The pile's answer as {"frame":"0xNN","name":..,"fields":{..}} plus extra keys. */
json_t *answer_json(const struct evcs_ykc_msg *m, uint8_t type, enum evcs_ykc_proto proto)
{
	char ft[8];
	snprintf(ft, sizeof ft, "0x%02X", type);
	const char *name = evcs_ykc_type_name(type, proto);
	return json_pack("{s:s, s:s, s:o}", "frame", ft, "name", name ? name : "?", "fields",
			 evcs_ykc_json_fields(m));
}

/* ---- commands from the core --------------------------------------------------------------------- */

static int arg_gun(struct sess *s, const evcs_command_t *c, json_t *a)
{
	int g = c->gun;
	json_t *v = json_object_get(a, "gun");
	if (json_is_integer(v))
		g = (int)json_integer_value(v);
	return g >= 1 && g <= s->ngun ? g : 0;
}

static void start_session_opened(int status, const evcs_session_result_t *r, void *ud)
{
	struct pcmd *pc = ud;
	struct sess *s = pc->s;
	if (s->closed || status != EVCS_OK || !r) {
		if (pc->cmd)
			cmd_fail(pc->cmd, status != EVCS_OK ? status : EVCS_EOFFLINE,
				 status != EVCS_OK ? "the session could not be stored" : "the pile disconnected");
		pcmd_release(pc);
		goto out;
	}
	pc->session_id = r->session_id;
	if (!pc->cmd) { /* the requester is gone (timeout): do not start an order nobody waits for */
		store_fmt(s, "session.stopped",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"trade_no\":\"%s\",\"state\":\"failed\","
			  "\"stop_reason_text\":\"command abandoned before sending\"}",
			  (long long)s->tenant, (long long)s->pile_id, pc->trade_no);
		pcmd_release(pc);
		goto out;
	}
	struct evcs_ykc_msg m;
	msg_init(&m, pc->req_type);
	struct evcs_ykc_remote_start *rs = &m.u.remote_start;
	memcpy(rs->trade_no, pc->trade_no, sizeof rs->trade_no);
	memcpy(rs->pile, s->pile, sizeof s->pile);
	gun_str(rs->gun, pc->gun);
	memcpy(rs->logical_card, pc->logical, sizeof rs->logical_card);
	memcpy(rs->physical_card, pc->pcard, 8);
	rs->balance_yuan = pc->balance;
	memcpy(rs->parallel_no, pc->parallel_no, sizeof rs->parallel_no);
	if (send_msg(s, &m, NULL, pc->seq) != EVCS_OK) {
		cmd_fail(pc->cmd, EVCS_EOFFLINE, "the frame could not be sent");
		pcmd_release(pc);
		goto out;
	}
	pc->state = PC_SENT;
	pcmd_arm(pc, s->y->start_timeout_ms);
out:
	sess_unref(s);
}

static void cmd_start(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a, int parallel)
{
	int gn = arg_gun(s, c, a);
	if (!gn) {
		cmd_fail(cmd, EVCS_EINVAL, "gun out of range");
		return;
	}
	struct gun *g = &s->guns[gn - 1];
	if (g->trade_no[0] || g->status == 3) {
		cmd_fail(cmd, EVCS_EBUSY, "the gun has an open order");
		return;
	}
	for (int i = 0; i < MAX_PCMD; i++)
		if (s->pcmd[i].state != PC_FREE && s->pcmd[i].kind == PK_START && s->pcmd[i].gun == gn) {
			cmd_fail(cmd, EVCS_EBUSY, "a start is already pending on this gun");
			return;
		}
	struct pcmd *pc = pcmd_get(s);
	if (!pc) {
		cmd_fail(cmd, EVCS_EBUSY, "too many commands in flight");
		return;
	}
	pc->kind = PK_START;
	pc->cmd = cmd;
	pc->gun = gn;
	pc->req_type = parallel ? 0xA4 : 0x34;
	pc->answer = parallel ? 0xA3 : 0x33;
	int64_t bal = json_integer_value(json_object_get(a, "balance"));
	if (evcs_ykc_balance_from_money(bal, &pc->balance) < 0) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "balance out of range");
		return;
	}
	const char *lc = json_string_value(json_object_get(a, "logical_card"));
	snprintf(pc->logical, sizeof pc->logical, "%s",
		 lc && strlen(lc) == 16 && strspn(lc, "0123456789") == 16 ? lc : "0000000000000000");
	const char *pcs = json_string_value(json_object_get(a, "physical_card"));
	if (!pcs)
		pcs = json_string_value(json_object_get(a, "card"));
	if (pcs && hex_to(pcs, pc->pcard, 8) < 0) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "physical_card: 16 hex digits expected");
		return;
	}
	/* A caller that already recorded the order (the CEC plugin's pending session) passes its
	 * transaction number; the pile must carry that one so session_open below finds that row
	 * instead of adding a second. It must be ours to send: 32 digits, this pile and gun first. */
	const char *given = json_string_value(json_object_get(a, "trade_no"));
	char gs[3];
	gun_str(gs, gn);
	if (given && (strlen(given) != 32 || strspn(given, "0123456789") != 32 || strncmp(given, s->pile, 14) != 0 ||
		      strncmp(given + 14, gs, 2) != 0)) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "trade_no: 32 digits starting with the pile and gun expected");
		return;
	}
	if (given)
		memcpy(pc->trade_no, given, 33);
	else if (next_trade(s, gn, pc->trade_no) < 0) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EBUSY, "trade-number counter exhausted this second");
		return;
	}
	if (parallel) {
		const char *pn = json_string_value(json_object_get(a, "parallel_no"));
		if (pn && strlen(pn) == 12 && strspn(pn, "0123456789") == 12)
			memcpy(pc->parallel_no, pn, 13);
		else
			memcpy(pc->parallel_no, pc->trade_no + 16, 12); /* yyMMddHHmmss */
	}
	const char *mode = json_string_value(json_object_get(a, "start_mode"));
	if (!mode)
		mode = json_string_value(json_object_get(a, "mode")); /* the CEC plugin's spelling */
	int64_t op = json_integer_value(json_object_get(a, "operator_user_id"));
	if (!mode)
		mode = op > 0 ? "operator" : "app";
	const char *pseq = json_string_value(json_object_get(a, "partner_seq"));
	if (strlen(mode) > 32 || (pseq && strlen(pseq) > EVCS_ID_MAX)) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "start_mode or partner_seq too long");
		return;
	}
	char pcard_hex[17];
	hex_of(pc->pcard, 8, pcard_hex);
	evcs_session_open_t o = {.size = sizeof o,
				 .tenant_id = s->tenant,
				 .pile_id = s->pile_id,
				 .pile = s->pile,
				 .gun = gn,
				 .trade_no = pc->trade_no,
				 .start_mode = mode,
				 .driver_id = json_integer_value(json_object_get(a, "driver_id")),
				 .card_id = json_integer_value(json_object_get(a, "card_id")),
				 .operator_user_id = op,
				 .partner_id = json_integer_value(json_object_get(a, "partner_id")),
				 .id_token = all_zero(pcard_hex) ? NULL : pcard_hex,
				 .partner_seq = pseq};
	s->refs++;
	int rc = api->session_open(s->y->p, &o, start_session_opened, pc);
	if (rc != EVCS_OK) {
		s->refs--;
		pcmd_release(pc);
		cmd_fail(cmd, rc, "the core refused the session");
	}
}

static int card_list(json_t *arr, struct evcs_ykc_card_list *l, size_t max)
{
	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > max)
		return -1;
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (hex_to(json_string_value(json_array_get(arr, i)), l->cards[i], 8) < 0)
			return -1;
	l->n = l->count = (uint8_t)json_array_size(arr);
	return 0;
}

/* ---- the command table -------------------------------------------------------------------------- */

/* What a builder made of a command's arguments. A negative status (EVCS_ENOTSUP) is returned
 * to the core as the command's failure. */
enum build_result {
	BUILT = 0,    /* b->m is the frame to send and b->answer the frame that answers it */
	HANDLED = 1,  /* the builder answered the requester or sent the frame itself */
	BAD_ARGS = 2, /* answered EVCS_EINVAL "bad command arguments" */
};

struct built {
	struct evcs_ykc_msg m;
	uint8_t answer;
	int gun;  /* the gun the answer is for (0 = any) */
	int kind; /* enum pcmd_kind */
};

typedef int (*cmd_builder)(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			   struct built *b);

/* A frame addressed to one gun of this pile (0x36 stop, 0x12 read real-time data). */
static int build_pile_gun(struct sess *s, const evcs_command_t *c, json_t *a, struct built *b,
			  uint8_t type, uint8_t answer)
{
	b->gun = arg_gun(s, c, a);
	if (!b->gun)
		return BAD_ARGS;
	b->m.type = type;
	memcpy(b->m.u.pile_gun.pile, s->pile, sizeof s->pile);
	gun_str(b->m.u.pile_gun.gun, b->gun);
	b->answer = answer;
	return BUILT;
}

static int build_start(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a, struct built *b)
{
	(void)b;
	cmd_start(s, cmd, c, a, 0);
	return HANDLED;
}

static int build_parallel_start(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
				struct built *b)
{
	(void)b;
	cmd_start(s, cmd, c, a, 1);
	return HANDLED;
}

static int build_stop(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a, struct built *b)
{
	(void)cmd;
	b->kind = PK_STOP;
	return build_pile_gun(s, c, a, b, 0x36, 0x35);
}

static int build_read_realtime(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			       struct built *b)
{
	(void)cmd;
	return build_pile_gun(s, c, a, b, 0x12, 0x13);
}

static int build_set_tariff(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			    struct built *b)
{
	(void)c;
	json_t *t = json_object_get(a, "tariff");
	if (t && tariff_load(s, t) < 0)
		return BAD_ARGS;
	if (!s->have_tariff) {
		cmd_fail(cmd, EVCS_ENOENT, "no tariff for this pile");
		return HANDLED;
	}
	if (!pile_idle(s)) {
		s->push_pending = 1;
		cmd_fail(cmd, EVCS_EBUSY, "the pile is charging; the tariff is sent when it is idle");
		return HANDLED;
	}
	b->m.u.tariff = s->tariff;
	memcpy(b->m.u.tariff.pile, s->pile, sizeof s->pile);
	b->m.type = 0x58;
	b->answer = 0x57;
	b->kind = PK_TARIFF;
	return BUILT;
}

static int build_reboot(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a, struct built *b)
{
	(void)cmd;
	(void)c;
	b->m.type = 0x92;
	memcpy(b->m.u.reboot.pile, s->pile, sizeof s->pile);
	json_t *v = json_object_get(a, "control");
	b->m.u.reboot.control = (uint8_t)(json_is_integer(v) ? json_integer_value(v) : 1);
	b->answer = 0x91;
	return BUILT;
}

/* 0x56 carries the platform's clock at send time: built by send_time_sync itself. */
static int build_time_sync(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			   struct built *b)
{
	(void)c;
	(void)a;
	(void)b;
	struct pcmd *pc = pcmd_get(s);
	if (!pc) {
		cmd_fail(cmd, EVCS_EBUSY, "too many commands in flight");
		return HANDLED;
	}
	pc->cmd = cmd;
	pc->answer = 0x55;
	pc->req_type = 0x56;
	send_time_sync(s, pc->seq);
	pc->state = PC_SENT;
	pcmd_arm(pc, s->y->command_timeout_ms);
	return HANDLED;
}

static int build_work_params(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			     struct built *b)
{
	(void)cmd;
	(void)c;
	b->m.type = 0x52;
	memcpy(b->m.u.work_params.pile, s->pile, sizeof s->pile);
	b->m.u.work_params.disabled = json_is_true(json_object_get(a, "disabled")) ||
				      json_integer_value(json_object_get(a, "disabled")) == 1;
	json_t *v = json_object_get(a, "max_power_pct");
	int64_t pct = json_is_integer(v) ? json_integer_value(v) : 100;
	if (pct < 0 || pct > 100)
		return BAD_ARGS;
	b->m.u.work_params.max_power_pct = (uint8_t)pct;
	b->answer = 0x51;
	return BUILT;
}

static int build_upgrade(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a, struct built *b)
{
	(void)cmd;
	(void)c;
	struct evcs_ykc_upgrade *u = &b->m.u.upgrade;
	b->m.type = 0x94;
	memcpy(u->pile, s->pile, sizeof s->pile);
	u->pile_model = (uint8_t)json_integer_value(json_object_get(a, "pile_model"));
	u->power_kw = (uint16_t)json_integer_value(json_object_get(a, "power_kw"));
	u->port = (uint16_t)json_integer_value(json_object_get(a, "port"));
	const char *sv = json_string_value(json_object_get(a, "server"));
	const char *us = json_string_value(json_object_get(a, "user"));
	const char *pw = json_string_value(json_object_get(a, "password"));
	const char *pa = json_string_value(json_object_get(a, "path"));
	if (!sv || strlen(sv) > 16 || (us && strlen(us) > 16) || (pw && strlen(pw) > 16) || !pa ||
	    strlen(pa) > 32)
		return BAD_ARGS;
	snprintf(u->server, sizeof u->server, "%s", sv);
	snprintf(u->user, sizeof u->user, "%s", us ? us : "");
	snprintf(u->password, sizeof u->password, "%s", pw ? pw : "");
	snprintf(u->path, sizeof u->path, "%s", pa);
	json_t *v = json_object_get(a, "control");
	u->control = (uint8_t)(json_is_integer(v) ? json_integer_value(v) : 1);
	v = json_object_get(a, "timeout_min");
	u->timeout_min = (uint8_t)(json_is_integer(v) ? json_integer_value(v) : 10);
	b->answer = 0x93;
	return BUILT;
}

static int build_card_sync(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			   struct built *b)
{
	(void)cmd;
	(void)c;
	json_t *arr = json_object_get(a, "cards");
	struct evcs_ykc_card_sync *cs = &b->m.u.card_sync;
	b->m.type = 0x44;
	memcpy(cs->pile, s->pile, sizeof s->pile);
	if (!json_is_array(arr) || !json_array_size(arr) || json_array_size(arr) > EVCS_YKC_SYNC_MAX)
		return BAD_ARGS;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *e = json_array_get(arr, i);
		const char *lc = json_string_value(json_array_get(e, 0));
		if (!lc || strlen(lc) != 16 ||
		    hex_to(json_string_value(json_array_get(e, 1)), cs->cards[i].physical_card, 8) < 0)
			return BAD_ARGS;
		memcpy(cs->cards[i].logical_card, lc, 17);
	}
	cs->n = cs->count = (uint8_t)json_array_size(arr);
	b->answer = 0x43;
	return BUILT;
}

/* 0x46 clear / 0x48 query: a list of physical card numbers */
static int build_card_list(struct sess *s, json_t *a, struct built *b, uint8_t type, uint8_t answer, size_t max)
{
	b->m.type = type;
	memcpy(b->m.u.card_list.pile, s->pile, sizeof s->pile);
	if (card_list(json_object_get(a, "cards"), &b->m.u.card_list, max) < 0)
		return BAD_ARGS;
	b->answer = answer;
	return BUILT;
}

static int build_card_clear(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			    struct built *b)
{
	(void)cmd;
	(void)c;
	return build_card_list(s, a, b, 0x46, 0x45, EVCS_YKC_CLEAR_MAX);
}

static int build_card_query(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			    struct built *b)
{
	(void)cmd;
	(void)c;
	return build_card_list(s, a, b, 0x48, 0x47, EVCS_YKC_QUERY_MAX);
}

static int build_ground_lock(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			     struct built *b)
{
	(void)cmd;
	b->gun = arg_gun(s, c, a);
	if (!b->gun)
		return BAD_ARGS;
	struct evcs_ykc_ground_lock_command *g = &b->m.u.ground_lock_command;
	b->m.type = 0x62;
	memcpy(g->pile, s->pile, sizeof s->pile);
	gun_str(g->gun, b->gun);
	json_t *v = json_object_get(a, "action");
	const char *act = json_string_value(v);
	if (act)
		g->action = !strcmp(act, "raise") ? 0x55 : !strcmp(act, "lower") ? 0xFF : 0;
	else
		g->action = (uint8_t)json_integer_value(v);
	if (g->action != 0x55 && g->action != 0xFF)
		return BAD_ARGS;
	b->answer = 0x63;
	return BUILT;
}

static int build_qr_prefix(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
			   struct built *b)
{
	(void)cmd;
	(void)c;
	const char *pre = json_string_value(json_object_get(a, "prefix"));
	if (!pre || strlen(pre) > EVCS_YKC_QR_PREFIX_MAX)
		return BAD_ARGS;
	b->m.type = 0xF0;
	memcpy(b->m.u.qr_prefix.pile, s->pile, sizeof s->pile);
	b->m.u.qr_prefix.qr_format = (uint8_t)json_integer_value(json_object_get(a, "qr_format"));
	b->m.u.qr_prefix.prefix_len = (uint8_t)strlen(pre);
	memcpy(b->m.u.qr_prefix.prefix, pre, strlen(pre) + 1);
	b->answer = 0xF1;
	return BUILT;
}

static int build_balance_update(struct sess *s, evcs_cmd_t *cmd, const evcs_command_t *c, json_t *a,
				struct built *b)
{
	(void)cmd;
	b->gun = arg_gun(s, c, a);
	if (!b->gun)
		return BAD_ARGS;
	struct evcs_ykc_balance_update *u = &b->m.u.balance_update;
	b->m.type = 0x42;
	memcpy(u->pile, s->pile, sizeof s->pile);
	gun_str(u->gun, b->gun);
	const char *pcs = json_string_value(json_object_get(a, "physical_card"));
	if (pcs && hex_to(pcs, u->physical_card, 8) < 0)
		return BAD_ARGS;
	if (evcs_ykc_balance_from_money(json_integer_value(json_object_get(a, "balance")), &u->balance_yuan) < 0)
		return BAD_ARGS;
	b->answer = 0x41;
	return BUILT;
}

#define CMD_YKC16 0x1u /* only on a YKC 1.6 session (otherwise EVCS_ENOTSUP) */

/* Every command the plugin accepts; plugins/ykc/README.md documents the arguments. */
static const struct ykc_command {
	const char *name;
	unsigned flags;
	cmd_builder build;
} commands[] = {
    {"start", 0, build_start},
    {"parallel_start", CMD_YKC16, build_parallel_start},
    {"stop", 0, build_stop},
    {"read_realtime", 0, build_read_realtime},
    {"set_tariff", 0, build_set_tariff},
    {"reboot", 0, build_reboot},
    {"time_sync", 0, build_time_sync},
    {"work_params", 0, build_work_params},
    {"upgrade", 0, build_upgrade},
    {"card_sync", 0, build_card_sync},
    {"card_clear", 0, build_card_clear},
    {"card_query", 0, build_card_query},
    {"ground_lock", 0, build_ground_lock},
    {"qr_prefix", CMD_YKC16, build_qr_prefix},
    {"balance_update", 0, build_balance_update},
};

static const struct ykc_command *command_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof commands / sizeof *commands; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Send a built frame and keep its pending answer. */
static void command_send_built(struct sess *s, evcs_cmd_t *cmd, json_t *a, struct built *b)
{
	struct pcmd *pc = pcmd_get(s);
	if (!pc) {
		cmd_fail(cmd, EVCS_EBUSY, "too many commands in flight");
		return;
	}
	pc->cmd = cmd;
	pc->kind = b->kind;
	pc->gun = b->gun;
	pc->answer = b->answer;
	pc->req_type = b->m.type;
	if (b->kind == PK_STOP) {
		struct gun *g = &s->guns[b->gun - 1];
		/* §1.5: the order is closed as soon as 0x36 is sent */
		g->stopping = 1;
		const char *by = json_string_value(json_object_get(a, "by"));
		char bye[80];
		store_fmt(s, "session.stop_requested",
			  "{\"tenant_id\":%lld,\"pile_id\":%lld,\"gun\":%d,\"trade_no\":\"%s\",\"by\":\"%s\"}",
			  (long long)s->tenant, (long long)s->pile_id, b->gun, g->trade_no,
			  jesc(bye, sizeof bye, by ? by : "operator"));
		/* 0x35 carries no trade number: pc->trade_no stays empty */
	}
	if (send_msg(s, &b->m, NULL, pc->seq) != EVCS_OK) {
		pcmd_release(pc);
		cmd_fail(cmd, EVCS_EINVAL, "the frame could not be built");
		return;
	}
	pc->state = PC_SENT;
	pcmd_arm(pc, s->y->command_timeout_ms);
}

int on_command(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud)
{
	struct sess *s = ud;
	if (s->closed || s->state != S_ONLINE)
		return EVCS_EOFFLINE;
	const struct ykc_command *k = command_find(c->name);
	if (!k || ((k->flags & CMD_YKC16) && s->proto != EVCS_YKC_PROTO_16))
		return EVCS_ENOTSUP;
	json_t *a = c->args_json ? json_loads(c->args_json, 0, NULL) : NULL;
	if (!a)
		a = json_object();
	struct built b;
	memset(&b, 0, sizeof b);
	b.kind = PK_GENERIC;
	int rc = k->build(s, cmd, c, a, &b);
	if (rc == BUILT)
		command_send_built(s, cmd, a, &b);
	else if (rc == BAD_ARGS)
		cmd_fail(cmd, EVCS_EINVAL, "bad command arguments");
	json_decref(a);
	return rc < 0 ? rc : EVCS_OK;
}
