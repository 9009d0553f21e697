/*
 * cec_plugin.h: internals shared by the cec.so modules: plugin.c (configuration, partners,
 * catalog, the served query_* routes, bus events) and outbox.c (our client side: tokens from
 * partners and the durable push outbox).
 *
 * Threading: everything runs on the core's loop thread. Ownership: the cec_ctx_t owns every
 * partner (partners are never freed before cleanup, so outbox entries may point at them), the
 * catalog JSON and the sessions list.
 */
#ifndef EVCS_CEC_PLUGIN_H
#define EVCS_CEC_PLUGIN_H

#include "cec_http.h"
#include "cec_model.h"
#include "cec_proto.h"

#include <evcs/plugin.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct ob_entry;

typedef struct cec_partner_rt {
	int64_t id, tenant_id;
	bool active;
	char name[65], operator_id[10], our_operator_id[10], base_url[256];
	char operator_secret[65], data_secret[17], data_iv[17], sig_secret[65];
	char user_operator_secret[65], user_data_secret[17], user_data_iv[17], user_sig_secret[65];
	cec_profile_t profile;
	cec_keys_t in_keys, out_keys;
	int64_t *stations;
	size_t n_stations;
	cec_token_store_t *tokens; /* tokens we issued to this partner */
	/* client side */
	char *token;           /* issued to us by the partner */
	int64_t token_exp_ms;
	bool token_busy;
	int64_t token_retry_ms; /* no query_token before this after a failure */
	unsigned token_failures;
	cec_stamp_t stamp;
	struct ob_entry *head, *tail; /* outbox, production order */
	size_t queued;
	unsigned inflight;
	struct cec_partner_rt *next;
} cec_partner_rt_t;

typedef struct cec_tenant_cat {
	int64_t tenant_id;
	json_t *cat; /* cec.catalog result */
	bool loading;
	struct cec_tenant_cat *next;
} cec_tenant_cat_t;

typedef struct cec_live_gun {
	char serial[15];
	int gun;
	int status;   /* core gun status: 0 offline, 1 fault, 2 idle, 3 charging */
	bool plugged;
	struct cec_live_gun *next;
} cec_live_gun_t;

typedef struct cec_sess {
	int64_t tenant_id, session_id;
	cec_partner_rt_t *partner;
	char seq[CEC_SEQ_LEN + 1];
	char connector_id[CEC_ID_MAX + 1];
	char serial[15];
	int gun;
	char trade_no[33];
	int seq_stat; /* CEC_SEQ_* */
	int64_t start_ms, sample_ms, end_ms;
	int64_t energy, money;
	cec_live_t live;
	int64_t last_push_ms;
	bool start_pushed, stop_pushed, order_pushed, stop_requested;
	struct cec_sess *next;
} cec_sess_t;

typedef struct cec_ctx {
	evcs_plugin_t *p;
	const evcs_api_t *api;
	char prefix[128];
	cec_partner_rt_t *partners;
	cec_tenant_cat_t *tenants;
	cec_live_gun_t *live;
	cec_sess_t *sessions;
	json_t *file_profiles; /* "tenant:operator" -> {"profile":..., "profile_flags":...} */
	bool ready;
	cec_http_t *http;
	evcs_timer_t *refresh_timer, *send_timer, *check_timer, *prune_timer, *first_check;
	evcs_sub_t *subs[8];
	unsigned nsubs;
	unsigned trade_counter;
	/* configuration */
	long long status_interval_ms, retry_base_ms, retry_max_ms, refresh_ms, command_timeout_ms;
	long long http_timeout_ms, max_inflight, check_hour;
	int64_t last_check_day;
	bool stopping;
	bool file_pending; /* partner_file not fully stored yet */
	/* outbox persistence queue: puts run one at a time so DB ids follow production order */
	struct ob_entry *put_head, *put_tail;
	bool put_busy;
	int64_t send_due_ms;
	evcs_metric_t *m_req, *m_err, *m_push_ok, *m_push_fail, *m_outbox;
} cec_ctx_t;

int64_t cec_now_ms(void);

/* outbox.c */
/* Queue one push: persisted with cec.outbox.put first, then sent. data is stolen. lane orders
 * deliveries (connector id); idem_key is unique per (tenant, kind). */
void cec_outbox_push(cec_ctx_t *c, cec_partner_rt_t *pt, cec_iface_t iface, const char *lane, const char *idem_key,
		     json_t *data);
/* Restart recovery: load pending rows (after partners are known). */
void cec_outbox_load(cec_ctx_t *c);
void cec_outbox_kick(cec_ctx_t *c);
void cec_outbox_free(cec_ctx_t *c);
cec_partner_rt_t *cec_partner_by_id(cec_ctx_t *c, int64_t id);

#endif
