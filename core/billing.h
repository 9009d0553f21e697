/*
 * billing.h: the tariff a session is priced under and the pricing itself, shared by the typed
 * session model (session.c) and the JSON storage operations (store_sessions.c), so both price
 * a close the same way. Internal to the core; loop thread only (the tariff script engine is).
 *
 * Tariff pick: a pile's assigned tariff row, else the tenant's tariff script's model, else the
 * tenant's newest active tariff row (evcs_tariff_resolve). A pick read from SQL comes from the
 * TARIFF_COLS columns (a tariffs row aliased t) or the SESSION_TARIFF_COLS columns (the snapshot
 * kept on a charging_sessions row aliased s, migration 010), in the order evcs_tariff_from_row
 * reads them.
 *
 * Pricing (evcs_billing_price): through the tenant's tariff script whenever one is loaded (so
 * every bill is a list of line items), else the plain rates of the pick, else the pile's own
 * unit prices. Integers only; the stored bill document is written in one pass.
 */
#ifndef EVCS_BILLING_H
#define EVCS_BILLING_H

#include "script.h"

#include <jansson.h>
#include <stdint.h>

struct evcs_core;

#define TARIFF_COLS                                                                              \
	"t.model, t.sharp_elec_rate, t.sharp_service_rate, t.peak_elec_rate, t.peak_service_rate, " \
	"t.flat_elec_rate, t.flat_service_rate, t.valley_elec_rate, t.valley_service_rate, "       \
	"t.slots, t.script_id, t.id"
#define SESSION_TARIFF_COLS                                                                      \
	"s.tariff_model, s.tariff_sharp_elec_rate, s.tariff_sharp_service_rate, "                  \
	"s.tariff_peak_elec_rate, s.tariff_peak_service_rate, s.tariff_flat_elec_rate, "            \
	"s.tariff_flat_service_rate, s.tariff_valley_elec_rate, s.tariff_valley_service_rate, "     \
	"s.tariff_slots, IF(s.tariff_script, 1, NULL), s.tariff_id"
#define TARIFF_NCOLS 12

typedef struct evcs_tariff_pick {
	int found;
	int script; /* priced by the tenant's Lua tariff script */
	int64_t id; /* tariffs.id, 0 when the model came from the script */
	evcs_tariff_model_t m;
} evcs_tariff_pick_t;

/* Read TARIFF_NCOLS columns starting at c0; 0, or -1 (t untouched... zeroed) when absent. */
int evcs_tariff_from_row(const evcs_db_result_t *r, size_t row, unsigned c0, evcs_tariff_pick_t *t);
void evcs_tariff_resolve(struct evcs_core *core, int64_t tenant, const char *pile,
			 const evcs_tariff_pick_t *assigned, const evcs_tariff_pick_t *active,
			 evcs_tariff_pick_t *out);
/* The storage JSON of a pick (pile.login, tariff.for_pile results; session.create input). */
json_t *evcs_tariff_json(const evcs_tariff_pick_t *t);
int evcs_tariff_parse(json_t *o, evcs_tariff_pick_t *t);
/* The 13 parameters that fill the snapshot columns of charging_sessions, in the order
 * SESSION_TARIFF_SET names them (NULLs when !t->found). */
#define SESSION_TARIFF_SET                                                                       \
	"tariff_model = ?, tariff_sharp_elec_rate = ?, tariff_sharp_service_rate = ?, "            \
	"tariff_peak_elec_rate = ?, tariff_peak_service_rate = ?, tariff_flat_elec_rate = ?, "      \
	"tariff_flat_service_rate = ?, tariff_valley_elec_rate = ?, tariff_valley_service_rate = ?, " \
	"tariff_slots = ?, tariff_script = ?"
#define SESSION_TARIFF_NPARAMS 11
void evcs_tariff_params(const evcs_tariff_pick_t *t, char slots_buf[49], evcs_db_param_t *p);

typedef struct evcs_priced {
	int64_t amounts[4]; /* per period: energy + service */
	int64_t elec, service, total;
	const char *pricing; /* "script", "rates", "pile_prices" */
	char *bill_text;     /* the bill document for charging_sessions.bill (malloc'd, or NULL) */
} evcs_priced_t;

typedef struct evcs_price_in {
	int64_t tenant_id;
	const char *pile, *trade_no;
	int gun;
	int64_t start_ms, end_ms;
	int64_t kwh[4];
	const int64_t *pile_prices; /* 4 unit prices (0.00001 yuan/kWh), for "pile_prices"; NULL */
	int64_t pile_amount;        /* -1 unknown */
	const evcs_tariff_pick_t *tariff;
	const evcs_meter_sample_t *samples; /* energy curve when the pile does not split periods */
	size_t nsamples;
} evcs_price_in_t;

/* Price; 0 always (failures of the script fall back to the plain rates, logged). Free
 * out->bill_text. */
int evcs_billing_price(struct evcs_core *core, const evcs_price_in_t *in, evcs_priced_t *out);
/* The configured [scripts] amount_tolerance (0.00001 yuan). */
int64_t evcs_billing_tolerance(struct evcs_core *core);

#endif
