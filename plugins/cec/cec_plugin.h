/*
 * cec_plugin.h: internals shared by the cec.so modules:
 *   plugin.c   configuration, loading (partner_file -> partners -> catalogs -> outbox), lifecycle
 *   catalog.c  partners as the plugin holds them (keys, profile, visible stations), the station
 *              catalog per tenant and its mapping to CEC stations, piles and guns
 *   serve.c    the served CEC route: envelope checks, query_token and the part 2 queries,
 *              query_equip_auth and query_equip_business_policy
 *   charge.c   charging sessions started by partners: query_start_charge, query_stop_charge,
 *              query_equip_charge_status and the start/stop result pushes
 *   notify.c   bus events -> pushes, the charge order and the daily check_charge_orders
 *   outbox.c   our client side: tokens from partners and the durable push outbox
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
	int64_t tenant_id;
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
	struct cec_call *calls; /* storage.c: operations in flight */
} cec_ctx_t;


typedef struct gun_ref {
	cec_tenant_cat_t *tc;
	json_t *station, *pile, *gun;
	char serial[15];
	int gun_no;
} gun_ref_t;

/* Everything borrowed by a cec_station_t lives in this arena until the reply is built. */
typedef struct arena {
	void **blocks;
	size_t n, cap;
} arena_t;

/* One inbound CEC request, from the route to its reply (cec_rq_reply frees it). */
typedef struct rq {
	cec_ctx_t *c;
	evcs_http_req_t *req;
	cec_inbound_t in;
	cec_partner_rt_t *pt;
	cec_iface_t iface;
	cec_biz_req_t biz;
	cec_stats_req_t stats;
	gun_ref_t ref;
	char trade_no[33];
} rq_t;

/* ud of cec_connector_known: is a ConnectorID one this partner may see? */
struct conn_lookup {
	cec_ctx_t *c;
	cec_partner_rt_t *pt;
};

#define CEC_LOG(c, lvl, t, ...) (c)->api->log((c)->p, (lvl), (t), NULL, __VA_ARGS__)

int64_t cec_now_ms(void);

/* catalog.c */
/* Refresh a partner from its stored row (cec_partners columns, stations as an array). */
void cec_partner_update(cec_ctx_t *c, cec_partner_rt_t *pt, json_t *o);
bool cec_partner_sees(const cec_partner_rt_t *pt, int64_t station_id);
cec_tenant_cat_t *cec_tenant_cat(cec_ctx_t *c, int64_t t, bool create);
json_t *cec_cat_find(json_t *cat, const char *arr, const char *key, int64_t v);
json_t *cec_cat_pile(json_t *cat, const char *serial);
json_t *cec_cat_gun(json_t *cat, int64_t pile_id, int gun);
cec_live_gun_t *cec_live_get(cec_ctx_t *c, const char *serial, int gun, bool create);
/* "<14-character serial><2-digit gun>" */
void cec_connector_id(char out[CEC_ID_MAX + 1], const char *serial, int gun);
/* Resolve a ConnectorID for a partner: 1 found and visible, 0 not. */
int cec_resolve_connector(cec_ctx_t *c, const cec_partner_rt_t *pt, const char *cid, gun_ref_t *r);
void cec_gun_state(cec_ctx_t *c, const char *serial, int gun, json_t *row, int *status, bool *plugged);
void *cec_arena_alloc(arena_t *a, size_t sz);
void cec_arena_free(arena_t *a);
const char *cec_js(json_t *o, const char *k); /* string member or "" */
void cec_fill_gun(cec_ctx_t *c, arena_t *a, const char *serial, bool dc, json_t *g, cec_gun_t *out);
int cec_fill_station(cec_ctx_t *c, const cec_partner_rt_t *pt, json_t *cat, json_t *s, arena_t *a,
		     cec_station_t *out);

/* serve.c */
void cec_http_handler(evcs_http_req_t *req, void *ud);
/* Answer with the CEC envelope (data is stolen) and free r. */
void cec_rq_reply(rq_t *r, int ret, const char *msg, json_t *data);
int cec_connector_known(void *ud, const char *cid); /* ud: struct conn_lookup */

/* charge.c */
void cec_serve_start_charge(rq_t *r);
void cec_serve_stop_charge(rq_t *r);
void cec_serve_charge_status(rq_t *r);
cec_sess_t *cec_sess_by_seq(cec_ctx_t *c, const cec_partner_rt_t *pt, const char *seq);
cec_sess_t *cec_sess_by_trade(cec_ctx_t *c, const char *pile, const char *trade);
cec_sess_t *cec_sess_on_gun(cec_ctx_t *c, const char *serial, int gun);
void cec_sess_free(cec_ctx_t *c, cec_sess_t *s);
void cec_push_start_result(cec_ctx_t *c, cec_sess_t *s, int seq_stat, const char *ident);
void cec_push_stop_result(cec_ctx_t *c, cec_sess_t *s, int fail_reason);
void cec_sess_to_model(const cec_sess_t *s, cec_session_t *m, int conn_status);
int cec_sess_conn_status(cec_ctx_t *c, const cec_sess_t *s);
/* Per-period details of a stored session row. */
size_t cec_row_details(json_t *row, cec_charge_detail_t d[4], int64_t start, int64_t end);
int cec_stop_reason_code(json_t *row);

/* storage.c */
/* Run the storage operation `op` ("cec.partner.list", ...; README.md) with JSON arguments;
 * done(status, result JSON, ud) runs later on the loop, never inside this call. Non-zero: not
 * started (unknown op, no memory), done is not called. */
int cec_store(cec_ctx_t *c, const char *op, const char *args_json, evcs_store_done done, void *ud);
/* Forget the operations in flight (cleanup): their callbacks are never called. */
void cec_store_free(cec_ctx_t *c);

/* partner_api.c */
/* Register the operator-API routes /api/v1/partners... (ABI 2 api_route). */
int cec_partner_api_init(cec_ctx_t *c);

/* notify.c */
/* Subscribe to the bus events that become pushes. */
int cec_notify_subscribe(cec_ctx_t *c);
/* The daily check_charge_orders, run from a timer. */
void cec_check_tick(void *ud);

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
