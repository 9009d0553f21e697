/*
 * billing.c: tariff picks and session pricing shared by session.c and the storage operations
 * (contract in billing.h). Money is int64 in 0.00001 yuan, energy int64 in 0.0001 kWh; every
 * amount is rounded once (evcs_mul_div, half away from zero) and totals are exact sums.
 */
#include "billing.h"

#include "core.h"
#include "db.h"
#include "log.h"
#include "scripting.h"
#include "tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP "billing"

static int64_t cell_i64(const evcs_db_result_t *r, size_t row, unsigned col, int64_t def)
{
	int64_t v;
	return evcs_db_cell_i64(r, row, col, &v) == 0 ? v : def;
}

int evcs_tariff_from_row(const evcs_db_result_t *r, size_t row, unsigned c0, evcs_tariff_pick_t *t)
{
	const char *model = evcs_db_cell(r, row, c0);
	const char *slots = evcs_db_cell(r, row, c0 + 9);
	if (!model || !slots || strlen(model) != 4 || strlen(slots) != EVCS_SLOTS)
		return -1;
	memset(t, 0, sizeof *t);
	snprintf(t->m.model, sizeof t->m.model, "%s", model);
	for (int p = 0; p < EVCS_PERIODS; p++) {
		t->m.elec[p] = cell_i64(r, row, c0 + 1 + 2 * (unsigned)p, 0);
		t->m.service[p] = cell_i64(r, row, c0 + 2 + 2 * (unsigned)p, 0);
	}
	for (int i = 0; i < EVCS_SLOTS; i++) {
		if (slots[i] < '0' || slots[i] > '3')
			return -1;
		t->m.slots[i] = (uint8_t)(slots[i] - '0');
	}
	t->script = evcs_db_cell(r, row, c0 + 10) != NULL;
	t->id = cell_i64(r, row, c0 + 11, 0);
	t->found = 1;
	return 0;
}

static const char *const period_names[4] = {"sharp", "peak", "flat", "valley"};

json_t *evcs_tariff_json(const evcs_tariff_pick_t *t)
{
	json_t *o = json_object();
	json_object_set_new(o, "model", json_string(t->m.model));
	json_object_set_new(o, "tariff_id", t->id > 0 ? json_integer(t->id) : json_null());
	json_object_set_new(o, "source", json_string(t->id > 0 ? "tariff" : "script"));
	json_object_set_new(o, "script", json_boolean(t->script));
	char k[32];
	for (int p = 0; p < EVCS_PERIODS; p++) {
		snprintf(k, sizeof k, "%s_elec_rate", period_names[p]);
		json_object_set_new(o, k, json_integer(t->m.elec[p]));
		snprintf(k, sizeof k, "%s_service_rate", period_names[p]);
		json_object_set_new(o, k, json_integer(t->m.service[p]));
	}
	json_object_set_new(o, "loss_ratio", json_integer(0));
	json_t *sl = json_array();
	for (int i = 0; i < EVCS_SLOTS; i++)
		json_array_append_new(sl, json_integer(t->m.slots[i]));
	json_object_set_new(o, "slots", sl);
	return o;
}

void evcs_tariff_resolve(evcs_core_t *core, int64_t tenant, const char *pile,
			 const evcs_tariff_pick_t *assigned, const evcs_tariff_pick_t *active,
			 evcs_tariff_pick_t *out)
{
	memset(out, 0, sizeof *out);
	if (assigned && assigned->found) {
		*out = *assigned;
		return;
	}
	if (core->scripts) {
		evcs_scripting_touch(core, tenant);
		char *err = NULL;
		evcs_tariff_model_t m;
		if (evcs_script_tariff(core->scripts, tenant, pile, &m, &err) == EVCS_OK) {
			out->found = 1;
			out->script = 1;
			out->m = m;
			free(err);
			return;
		}
		free(err);
	}
	if (active && active->found)
		*out = *active;
}

void evcs_tariff_params(const evcs_tariff_pick_t *t, char slots_buf[49], evcs_db_param_t *p)
{
	if (!t || !t->found) {
		for (int i = 0; i < SESSION_TARIFF_NPARAMS; i++)
			p[i] = EVCS_DB_NULL;
		return;
	}
	for (int i = 0; i < EVCS_SLOTS; i++)
		slots_buf[i] = (char)('0' + t->m.slots[i]);
	slots_buf[EVCS_SLOTS] = 0;
	size_t n = 0;
	p[n++] = EVCS_DB_STR(t->m.model);
	for (int q = 0; q < 4; q++) {
		p[n++] = EVCS_DB_INT(t->m.elec[q]);
		p[n++] = EVCS_DB_INT(t->m.service[q]);
	}
	p[n++] = EVCS_DB_STR(slots_buf);
	p[n++] = EVCS_DB_INT(t->script ? 1 : 0);
}

int64_t evcs_billing_tolerance(evcs_core_t *core)
{
	long long tol = 1000;
	char cerr[160];
	if (evcs_conf_int(core->conf, "scripts", "amount_tolerance", 1000, 0, 1000000000LL, &tol, cerr,
			  sizeof cerr) < 0)
		tol = 1000;
	return tol;
}

/* Per period, electricity and service each kWh x rate rounded once (as evcs.mul_div in the
 * default tariff script); the total is the exact sum. */
static void price_plain(const evcs_tariff_model_t *m, const int64_t kwh[4], int64_t amounts[4],
			int64_t *elec, int64_t *service)
{
	*elec = *service = 0;
	for (int p = 0; p < 4; p++) {
		int64_t e = 0, s = 0;
		evcs_mul_div(kwh[p], m->elec[p], 10000, &e);
		evcs_mul_div(kwh[p], m->service[p], 10000, &s);
		amounts[p] = e + s;
		*elec += e;
		*service += s;
	}
}

/* {"pricing": P, <body's members>, "tariff_snapshot": {...}} serialised once, by jansson.
 * body (stolen, may be NULL) is the script's bill or the plain figures. */
static char *bill_document(const char *pricing, json_t *body, const evcs_tariff_pick_t *t)
{
	json_t *doc = json_object();
	char *out = NULL;
	if (doc && json_object_set_new(doc, "pricing", json_string(pricing)) == 0 &&
	    (!body || json_object_update(doc, body) == 0) &&
	    (!t || !t->found || json_object_set_new(doc, "tariff_snapshot", evcs_tariff_json(t)) == 0))
		out = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(body);
	json_decref(doc);
	return out;
}

int evcs_billing_price(evcs_core_t *core, const evcs_price_in_t *in, evcs_priced_t *out)
{
	memset(out, 0, sizeof *out);
	const evcs_tariff_pick_t *tp = in->tariff;
	int found = tp && tp->found;
	int64_t tenant = in->tenant_id;
	if (core->scripts)
		evcs_scripting_touch(core, tenant);
	if (found && core->scripts && evcs_script_digest(core->scripts, tenant, "tariff")) {
		evcs_session_t sess = {0};
		sess.tenant_id = tenant;
		sess.pile = in->pile;
		sess.gun = in->gun;
		sess.trade_no = in->trade_no;
		sess.start = in->start_ms / 1000;
		sess.stop = in->end_ms / 1000;
		sess.tz = evcs_core_tenant_tz(core, tenant); /* DST-correct per piece of energy */
		for (int p = 0; p < 4; p++)
			sess.period_kwh[p] = in->kwh[p];
		sess.tariff = &tp->m;
		sess.pile_amount = in->pile_amount;
		/* no calloc: evcs_script_quote writes the whole bill on success, nothing is read otherwise */
		evcs_bill_t *bill = malloc(sizeof *bill);
		char *err = NULL;
		if (bill && evcs_script_quote(core->scripts, tenant, &sess, bill, &err) == EVCS_OK) {
			for (size_t i = 0; i < bill->nitems; i++) {
				const evcs_bill_item_t *it = &bill->items[i];
				if (it->period >= 0 && it->period < 4 &&
				    (it->kind == EVCS_ITEM_ENERGY || it->kind == EVCS_ITEM_SERVICE))
					out->amounts[it->period] += it->amount;
				if (it->kind == EVCS_ITEM_ENERGY)
					out->elec += it->amount;
				else if (it->kind == EVCS_ITEM_SERVICE)
					out->service += it->amount;
			}
			out->total = bill->total;
			out->pricing = "script";
			out->bill_text = bill_document("script", evcs_bill_to_tree(bill), tp);
			free(err);
			free(bill);
			return 0;
		}
		evcs_log(EVCS_LOG_WARNING, COMP, tenant, in->pile,
			 "tariff script could not price %s (%s); using the plain rates",
			 in->trade_no ? in->trade_no : "?", err ? err : "?");
		free(err);
		free(bill);
	}
	if (found) {
		price_plain(&tp->m, in->kwh, out->amounts, &out->elec, &out->service);
		out->total = out->elec + out->service;
		out->pricing = "rates";
		out->bill_text = bill_document(
		    "rates",
		    json_pack("{s:s, s:I, s:I, s:I}", "tariff_model", tp->m.model, "elec_amount",
			      (json_int_t)out->elec, "service_amount", (json_int_t)out->service, "total",
			      (json_int_t)out->total),
		    tp);
		return 0;
	}
	/* no tariff anywhere: the pile's own unit prices are all there is; say so */
	for (int p = 0; p < 4; p++) {
		out->amounts[p] = 0;
		if (in->pile_prices && in->pile_prices[p] > 0)
			evcs_mul_div(in->kwh[p], in->pile_prices[p], 10000, &out->amounts[p]);
		out->total += out->amounts[p];
	}
	out->elec = out->total;
	out->pricing = "pile_prices";
	out->bill_text = bill_document("pile_prices", json_pack("{s:I}", "total", (json_int_t)out->total),
				       NULL);
	return 0;
}
