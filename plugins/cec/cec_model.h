/*
 * cec_model.h: T/CEC 102 parts 2 and 3 business objects. Maps the core's station, pile
 * (EquipmentInfo) and gun (ConnectorInfo) rows and sessions to CEC JSON, validates the
 * Data of every query_* request we serve, builds every notification_* and
 * check_charge_orders body we push, and reads the partners' replies to those pushes.
 * Reference: /work/shared/docs/cec.md (section numbers below are that file's).
 *
 * Contract
 * - Units in: money int64 of 0.00001 yuan, prices int64 of 0.00001 yuan per kWh, energy
 *   int64 of 0.0001 kWh, power int64 W, coordinates int64 of 1e-6 degree (GCJ-02), live
 *   current/voltage int32 of 0.1 A / 0.1 V, times int64 epoch seconds (rendered as local
 *   time at profile->utc_offset_sec). Conversion to CEC decimals happens only here, exactly,
 *   rounding half away from zero (money 2, price 4, energy 2 or 3, kWh stats 1, power 1,
 *   coordinates 6). No floating point.
 * - All input structs are borrowed for the duration of the call; strings may be NULL for
 *   optional fields (omitted) and for required ones ("" is sent).
 * - Builders return a new json_t (caller json_decref's) to be serialised with
 *   evcs_cec_dumps() (decimals are markers until then), or NULL on allocation failure or
 *   text that is not valid UTF-8 (err, if given, says which field).
 * - Validators return the Ret code: 0, CEC_RET_BIZ (4004; msg names the field),
 *   CEC_RET_SYSTEM if a lookup callback failed. Output structs copy what they keep.
 * - Input keys are matched case-insensitively and every spelling variant of §9 is
 *   accepted whatever the profile; unknown keys are ignored.
 * - Reentrant; no global state.
 */
#ifndef EVCS_CEC_MODEL_H
#define EVCS_CEC_MODEL_H

#include "cec_proto.h"

/* ---- interfaces (§6) ---- */
typedef enum cec_iface {
	CEC_IF_QUERY_TOKEN,
	CEC_IF_QUERY_STATIONS_INFO,
	CEC_IF_QUERY_STATION_STATUS,
	CEC_IF_QUERY_STATION_STATS,
	CEC_IF_QUERY_EQUIP_AUTH,
	CEC_IF_QUERY_EQUIP_BUSINESS_POLICY,
	CEC_IF_QUERY_START_CHARGE,
	CEC_IF_QUERY_EQUIP_CHARGE_STATUS,
	CEC_IF_QUERY_STOP_CHARGE,
	/* pushes we send */
	CEC_IF_NOTIFY_STATION_STATUS,
	CEC_IF_NOTIFY_START_CHARGE_RESULT,
	CEC_IF_NOTIFY_EQUIP_CHARGE_STATUS,
	CEC_IF_NOTIFY_STOP_CHARGE_RESULT,
	CEC_IF_NOTIFY_CHARGE_ORDER_INFO,
	CEC_IF_CHECK_CHARGE_ORDERS,
	CEC_IF__COUNT
} cec_iface_t;
/* URL path component, e.g. "notification_stationStatus". */
const char *evcs_cec_iface_name(cec_iface_t i);
/* Reverse lookup (exact match); -1 if unknown. */
int evcs_cec_iface_from_name(const char *name);

/* ---- enumerations ---- */
/* The core's live gun state. */
typedef enum cec_gun_state {
	CEC_GUN_OFFLINE = 0,
	CEC_GUN_FAULT = 1,
	CEC_GUN_IDLE = 2,
	CEC_GUN_CHARGING = 3,
} cec_gun_state_t;

/* ConnectorStatusInfo.Status (§7.2). */
enum {
	CEC_CS_OFFLINE = 0,
	CEC_CS_IDLE = 1,
	CEC_CS_PLUGGED = 2,   /* occupied, not charging */
	CEC_CS_CHARGING = 3,
	CEC_CS_RESERVED = 4,  /* occupied, reserved/locked */
	CEC_CS_FAULT = 255,
};
/* Status for notification_stationStatus / query_station_status. Precedence: offline, fault,
 * charging, plugged, reserved, idle; an unknown state value is reported as fault. */
int evcs_cec_connector_status(cec_gun_state_t s, bool plugged, bool reserved);
/* ConnectorStatus inside charge status (§8, values 1,2,3,4,255): the same mapping, except
 * that this enumeration has no "offline", so an offline gun is reported as 255. */
int evcs_cec_charge_connector_status(cec_gun_state_t s, bool plugged, bool reserved);

/* StartChargeSeqStat (§8). */
enum { CEC_SEQ_STARTING = 1, CEC_SEQ_CHARGING = 2, CEC_SEQ_STOPPING = 3, CEC_SEQ_FINISHED = 4, CEC_SEQ_UNKNOWN = 5 };
/* Tariff class of a period (ORISE PriceType; SH Cusp/Peak/Flat/Valley). */
typedef enum cec_price_type {
	CEC_PT_CUSP = 0, /* 尖 sharp */
	CEC_PT_PEAK = 1,
	CEC_PT_FLAT = 2,
	CEC_PT_VALLEY = 3,
} cec_price_type_t;

/* ---- core rows ---- */
typedef struct cec_live {
	int32_t current_da[3]; /* 0.1 A; DC output current in [0] */
	int32_t voltage_dv[3]; /* 0.1 V; DC output voltage in [0] */
	unsigned phases;       /* 1: only A is sent; 3: A, B and C */
	int soc;               /* percent 0..100, <0 unknown (omitted) */
} cec_live_t;

typedef struct cec_gun {
	const char *connector_id;  /* CEC ConnectorID, unique within the operator */
	const char *name;          /* S(30) N */
	int connector_type;        /* 1..6 (§7.1) */
	int voltage_upper_v;
	int voltage_lower_v;
	int current_a;             /* rated current, A */
	int64_t power_w;           /* rated power; sent as kW with 1 decimal */
	const char *park_no;       /* S(10) N */
	int national_standard;     /* 1 GB/T 2011, 2 GB/T 2015, 0 omitted */
	/* live */
	cec_gun_state_t state;
	bool plugged;
	bool reserved;
	int park_status;           /* 0 unknown, 10 free, 50 occupied; 0 omitted */
	int lock_status;           /* 0 unknown, 10 unlocked, 50 locked; 0 omitted */
	const cec_live_t *live;    /* optional, for the SH extended status push */
} cec_gun_t;

typedef struct cec_pile {
	const char *equipment_id;
	const char *manufacturer_id;   /* S(9) N */
	const char *manufacturer_name; /* S(30) N */
	const char *model;             /* EquipmentModel S(20) N */
	int64_t production_date;       /* epoch, 0 omitted */
	const char *name;              /* EquipmentName S(30) N */
	int equipment_type;            /* 1 DC, 2 AC, 3 AC/DC, 4 wireless, 5 other */
	int64_t power_w;               /* total */
	bool has_gps;
	int64_t lng_e6, lat_e6;
	const cec_gun_t *guns;
	size_t n_guns;
} cec_pile_t;

typedef struct cec_station {
	int64_t tenant_id;            /* core bookkeeping; not sent */
	const char *station_id;       /* S(20) */
	const char *operator_id;      /* S(9) our org code */
	const char *equipment_owner_id;
	const char *name;             /* S(50) */
	const char *country_code;     /* NULL -> "CN" */
	const char *area_code;        /* GB/T 2260 */
	const char *address;
	const char *station_tel;      /* N */
	const char *service_tel;
	int station_type;             /* 1 public, 50 private, 100 bus, 101 sanitation, 102 logistics, 103 taxi, 255 */
	int station_status;           /* 0 unknown, 1 building, 5 closed, 6 maintenance, 50 normal */
	int park_nums;
	int64_t lng_e6, lat_e6;       /* GCJ-02 */
	const char *site_guide;
	int construction;             /* 1..11, 255 */
	const char *const *pictures;
	size_t n_pictures;
	const char *match_cars, *park_info, *busine_hours, *electricity_fee, *service_fee, *park_fee, *payment;
	int support_order;            /* 0/1; sent only when 1 */
	const char *remark;
	const json_t *extra;          /* optional object merged into StationInfo when profile->station_extra
				       * (CJV ElectricityTax/ServiceTax/ParkFeeFree..., XJ, SH fields) */
	const cec_pile_t *piles;
	size_t n_piles;
} cec_station_t;

/* ---- part 2 ---- */
typedef struct cec_page {
	unsigned page_no;    /* >= 1 */
	unsigned page_size;  /* clamped to profile->page_size_max */
	bool has_since;
	int64_t since;       /* LastQueryTime as epoch (stations changed since), when has_since */
} cec_page_t;
int evcs_cec_validate_stations_info(const json_t *data, const cec_profile_t *p, cec_page_t *out, cec_status_t *st);
/* Row offset of the page for the core's LIMIT/OFFSET. */
uint64_t evcs_cec_page_offset(const cec_page_t *pg);
/* stations: the page's rows only; item_size: total matching stations. PageCount =
 * ceil(ItemSize/PageSize); a page past the end answers its PageNo with an empty list. */
json_t *evcs_cec_stations_info_reply(const cec_profile_t *p, const cec_page_t *pg, uint64_t item_size,
				     const cec_station_t *stations, size_t n, cec_status_t *err);
json_t *evcs_cec_station_info(const cec_profile_t *p, const cec_station_t *s, cec_status_t *err);

typedef struct cec_station_ids {
	char **ids;  /* malloc'd; free with evcs_cec_station_ids_clear */
	size_t n;
} cec_station_ids_t;
int evcs_cec_validate_station_status(const json_t *data, const cec_profile_t *p, cec_station_ids_t *out,
				     cec_status_t *st);
void evcs_cec_station_ids_clear(cec_station_ids_t *ids);
/* Stations found (unknown ids are simply left out); Total = n. */
json_t *evcs_cec_station_status_reply(const cec_profile_t *p, const cec_station_t *stations, size_t n);
json_t *evcs_cec_connector_status_info(const cec_profile_t *p, const cec_gun_t *g);

typedef struct cec_stats_req {
	char station_id[64];
	char start[11], end[11]; /* yyyy-MM-dd */
	int64_t start_epoch;     /* local midnight of start */
	int64_t end_epoch;       /* local midnight after end (exclusive) */
} cec_stats_req_t;
int evcs_cec_validate_station_stats(const json_t *data, const cec_profile_t *p, cec_stats_req_t *out,
				    cec_status_t *st);
typedef struct cec_connector_stats {
	const char *connector_id;
	int64_t energy; /* 0.0001 kWh */
} cec_connector_stats_t;
typedef struct cec_equipment_stats {
	const char *equipment_id;
	const cec_connector_stats_t *connectors;
	size_t n;
} cec_equipment_stats_t;
/* Equipment and station totals are the exact sums, each rounded once to 0.1 kWh. */
json_t *evcs_cec_station_stats_reply(const cec_profile_t *p, const cec_stats_req_t *req,
				     const cec_equipment_stats_t *equipments, size_t n);

/* ---- part 3 requests ---- */
#define CEC_SEQ_LEN 27
#define CEC_ID_MAX 64

/* Does the connector exist (and belong to the operator the caller may use)?
 * Return 1 yes, 0 no, <0 lookup failure. */
typedef int (*cec_connector_fn)(void *ud, const char *connector_id);

typedef struct cec_biz_req {
	char seq[CEC_SEQ_LEN + 1];       /* EquipAuthSeq / EquipBizSeq / StartChargeSeq */
	char connector_id[CEC_ID_MAX + 1];
	bool connector_known;            /* false only for start/stop with an unknown connector: answer
					  * SuccStat 1, FailReason 1 (no such device) */
	char qr_code[256];               /* start only: QRCode or ORISE QrCode, "" if absent */
	char phone[32], plate[32];       /* start only: ORISE PhoneNum/PlateNum, "" if absent */
	bool has_balance;
	int64_t balance;                 /* start only: ORISE Balance, 0.00001 yuan */
} cec_biz_req_t;

/* caller_opid is the envelope's OperatorID (the *Seq prefix, §8). lookup may be NULL only for
 * query_equip_charge_status, which has no ConnectorID. */
int evcs_cec_validate_equip_auth(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				 cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st);
int evcs_cec_validate_business_policy(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				      cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st);
int evcs_cec_validate_start_charge(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				   cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st);
int evcs_cec_validate_charge_status(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				    cec_biz_req_t *out, cec_status_t *st);
int evcs_cec_validate_stop_charge(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				  cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st);
/* query_token Data: OperatorID and OperatorSecret present (evcs_cec_token_serve does the rest). */
int evcs_cec_validate_token(const json_t *data, cec_status_t *st);
/* StartChargeSeq-style check on its own: 27 letters/digits, prefixed by caller_opid when
 * profile->seq_prefix_check. field names the field in the message. */
int evcs_cec_check_seq(const char *field, const char *seq, const char *caller_opid, const cec_profile_t *p,
		       cec_status_t *st);

/* ---- part 3 replies ---- */
/* fail_reason 0 = success (SuccStat 0). fail_msg (ORISE FailReasonMsg) only with the profile flag. */
json_t *evcs_cec_equip_auth_reply(const cec_profile_t *p, const cec_biz_req_t *req, int fail_reason,
				  const char *fail_msg);

typedef struct cec_policy_period {
	int start_sec;           /* seconds after local midnight; the first period starts at 0 */
	int64_t elec_price;      /* 0.00001 yuan/kWh */
	int64_t service_price;   /* 0.00001 yuan/kWh */
	cec_price_type_t type;
} cec_policy_period_t;
/* fail_reason 0 with periods (SumPeriod = n, at most 32), or e.g. 1 = no policy (no periods sent). */
json_t *evcs_cec_business_policy_reply(const cec_profile_t *p, const cec_biz_req_t *req,
				       const cec_policy_period_t *periods, size_t n, int fail_reason);

json_t *evcs_cec_start_charge_reply(const cec_profile_t *p, const cec_biz_req_t *req, int seq_stat,
				    int fail_reason);
json_t *evcs_cec_stop_charge_reply(const cec_profile_t *p, const cec_biz_req_t *req, int seq_stat,
				   int fail_reason);

typedef struct cec_charge_detail {
	int64_t start, end;       /* epoch */
	int64_t elec_price;       /* 0.00001 yuan/kWh */
	int64_t service_price;
	int64_t energy;           /* 0.0001 kWh */
	int64_t elec_money;       /* 0.00001 yuan */
	int64_t service_money;
	cec_price_type_t type;
} cec_charge_detail_t;

typedef struct cec_session {
	const char *start_charge_seq;
	int seq_stat;              /* CEC_SEQ_* */
	const char *connector_id;
	int connector_status;      /* from evcs_cec_charge_connector_status */
	cec_live_t live;
	int64_t start_time;        /* session start */
	int64_t sample_time;       /* EndTime in charge status: time of this sample */
	int64_t end_time;          /* EndTime in the order */
	int64_t energy;            /* 0.0001 kWh */
	int64_t elec_money, service_money, total_money; /* 0.00001 yuan */
	const cec_charge_detail_t *details;
	size_t n_details;          /* at most 32 are sent */
	int stop_reason;           /* order: 0 user, 1 platform, 2 BMS, 3 charger fault, 4 unplugged, 5-99 */
	const char *vin;           /* order, ORISE profile only */
} cec_session_t;

/* query_equip_charge_status reply Data. */
json_t *evcs_cec_charge_status_reply(const cec_profile_t *p, const cec_session_t *s);

/* ---- pushes (request Data we send) ---- */
json_t *evcs_cec_notify_station_status(const cec_profile_t *p, const cec_gun_t *g);
json_t *evcs_cec_notify_start_result(const cec_profile_t *p, const char *start_charge_seq, int seq_stat,
				     const char *connector_id, int64_t start_time, const char *ident_code);
json_t *evcs_cec_notify_charge_status(const cec_profile_t *p, const cec_session_t *s);
/* SuccStat is 0 when fail_reason is 0. */
json_t *evcs_cec_notify_stop_result(const cec_profile_t *p, const char *start_charge_seq, int seq_stat,
				    const char *connector_id, int fail_reason);
json_t *evcs_cec_notify_order_info(const cec_profile_t *p, const cec_session_t *s);

typedef struct cec_order_sum {
	const char *start_charge_seq;
	int64_t energy;      /* 0.0001 kWh */
	int64_t total_money; /* 0.00001 yuan */
} cec_order_sum_t;
/* Day reconciliation. check_seq must be 27 characters (our OperatorID + 18). Totals are the
 * sums of the per-order values as sent (rounded), so the partner's own sum matches them. */
json_t *evcs_cec_check_charge_orders(const cec_profile_t *p, const char *check_seq, int64_t start, int64_t end,
				     const cec_order_sum_t *orders, size_t n);

/* ---- partners' replies to our pushes (outbox) ---- */
typedef struct cec_push_result {
	bool done;       /* delivery complete: drop from the outbox */
	int code;        /* Status / SuccStat / ConfirmResult as received */
	int fail_reason; /* FailReason when present */
} cec_push_result_t;
/* notification_stationStatus: Status 0 accepted or 1 discarded both end it (§7.2);
 * start/stop/charge status: SuccStat 0; order: ConfirmResult 0 (1 disputed keeps it, §8.9);
 * check_charge_orders: any well-formed reply (disputes via evcs_cec_parse_check_reply).
 * Returns 0, or CEC_RET_BIZ if the reply lacks its status field. */
int evcs_cec_parse_push_reply(cec_iface_t iface, const json_t *data, cec_push_result_t *out, cec_status_t *st);

typedef struct cec_dispute {
	char start_charge_seq[CEC_SEQ_LEN + 1];
	int64_t energy;      /* 0.0001 kWh */
	int64_t total_money; /* 0.00001 yuan */
	int reason;          /* 1 not found, 2 amount, 3 energy, 4-99 custom */
} cec_dispute_t;
typedef struct cec_check_reply {
	char check_seq[CEC_SEQ_LEN + 1];
	int total_disputes;
	int64_t dispute_energy, dispute_money;
	cec_dispute_t *disputes; /* malloc'd */
	size_t n;
} cec_check_reply_t;
int evcs_cec_parse_check_reply(const json_t *data, cec_check_reply_t *out, cec_status_t *st);
void evcs_cec_check_reply_clear(cec_check_reply_t *r);

#endif
