/*
 * plugins/ykc/tariff.c: the YKC billing model (§1.2, §3.6). The tenant's tariff comes from
 * storage (at login, tariff.for_pile, or a set_tariff command) as the storage JSON and is
 * kept in wire form (s->tariff, sent in 0x0A/0x58); the core takes a session's tariff
 * snapshot itself when the session opens. 0x05 is answered "same" only when the pile's model
 * code equals ours; 0x09 is answered with 0x0A, later when no tariff is loaded yet. EVCS_EV_TARIFF_CHANGED re-fetches
 * the model for every online pile of the tenant; a 0x58 is pushed only to an idle pile and
 * retried when the pile reports idle after a refusal or timeout.
 */
#include "ykc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void send_tariff(struct sess *s, uint8_t type, const uint8_t *seq, uint8_t used_seq[2])
{
	struct evcs_ykc_msg m;
	msg_init(&m, type);
	m.u.tariff = s->tariff;
	snprintf(m.u.tariff.pile, sizeof m.u.tariff.pile, "%s", s->pile);
	send_msg(s, &m, seq, used_seq);
}

/* ---- tariffs --------------------------------------------------------------------------------- */

/* Storage tariff JSON (plugins/STORAGE.md) -> wire struct. */
int tariff_load(struct sess *s, json_t *t)
{
	static const char *const pn[4] = {"sharp", "peak", "flat", "valley"};
	struct evcs_ykc_tariff w;
	memset(&w, 0, sizeof w);
	const char *model = json_string_value(json_object_get(t, "model"));
	json_t *sl = json_object_get(t, "slots");
	if (!model || strlen(model) != 4 || !json_is_array(sl) || json_array_size(sl) != 48)
		return -1;
	memcpy(w.model, model, 5);
	uint32_t *rates[8] = {&w.sharp_elec_rate, &w.sharp_service_rate, &w.peak_elec_rate,
			      &w.peak_service_rate, &w.flat_elec_rate, &w.flat_service_rate,
			      &w.valley_elec_rate, &w.valley_service_rate};
	for (int p = 0; p < 4; p++) {
		char k[32];
		snprintf(k, sizeof k, "%s_elec_rate", pn[p]);
		if (evcs_ykc_rate_from_money(json_integer_value(json_object_get(t, k)), rates[2 * p]) < 0)
			return -1;
		snprintf(k, sizeof k, "%s_service_rate", pn[p]);
		if (evcs_ykc_rate_from_money(json_integer_value(json_object_get(t, k)), rates[2 * p + 1]) < 0)
			return -1;
	}
	for (int i = 0; i < 48; i++)
		w.slots[i] = (uint8_t)(json_integer_value(json_array_get(sl, (size_t)i)) & 3);
	s->tariff = w;
	s->have_tariff = 1;
	return 0;
}

int pile_idle(const struct sess *s)
{
	for (int g = 0; g < s->ngun; g++)
		if (s->guns[g].status == 3 || s->guns[g].trade_no[0])
			return 0;
	return 1;
}


/* 0x58 to an idle pile whose model differs (§1.5: tariffs only while idle; retried later). */
void maybe_push_tariff(struct sess *s)
{
	if (!s->push_pending || !s->have_tariff || s->state != S_ONLINE || !pile_idle(s))
		return;
	struct pcmd *pc = pcmd_get(s);
	if (!pc)
		return;
	pc->kind = PK_TARIFF;
	pc->req_type = 0x58;
	pc->answer = 0x57;
	send_tariff(s, 0x58, NULL, pc->seq);
	pc->state = PC_SENT;
	pcmd_arm(pc, s->y->command_timeout_ms);
	s->push_pending = 0;
	LOG(s, EVCS_LOG_INFO, "pushed tariff model %s (0x58)", s->tariff.model);
}

static void tariff_fetched(int status, const char *result, void *ud)
{
	struct sess *s = ud;
	s->tariff_fetching = 0;
	json_t *r = status == EVCS_OK && result ? json_loads(result, 0, NULL) : NULL;
	json_t *t = r ? json_object_get(r, "tariff") : NULL;
	if (!s->closed && t && json_is_object(t)) {
		char old[5];
		memcpy(old, s->tariff.model, 5);
		int had = s->have_tariff;
		if (tariff_load(s, t) == 0) {
			if (s->pending_0a) {
				s->pending_0a = 0;
				send_tariff(s, 0x0A, s->pending_0a_seq, NULL);
			}
			if ((!had || strcmp(old, s->tariff.model) != 0) && s->pile_model[0] &&
			    strcmp(s->pile_model, s->tariff.model) != 0) {
				s->push_pending = 1;
				maybe_push_tariff(s);
			}
		}
	} else if (!s->closed) {
		LOG(s, EVCS_LOG_WARNING, "no tariff for this pile (%s)", api->status_name(status));
	}
	json_decref(r);
	sess_unref(s);
}

static void tariff_fetch(struct sess *s)
{
	if (s->tariff_fetching || s->closed)
		return;
	s->tariff_fetching = 1;
	s->refs++;
	snprintf(s->y->jbuf, sizeof s->y->jbuf, "{\"tenant_id\":%lld,\"pile_id\":%lld,\"serial\":\"%s\"}",
		 (long long)s->tenant, (long long)s->pile_id, s->pile);
	if (api->store(s->y->p, "tariff.for_pile", s->y->jbuf, tariff_fetched, s) != EVCS_OK) {
		s->tariff_fetching = 0;
		sess_unref(s);
	}
}

int on_tariff_changed(const evcs_event_t *ev, void *ud)
{
	struct ykc *y = ud;
	for (unsigned b = 0; b < PILE_BUCKETS; b++)
		for (struct sess *s = y->map[b]; s; s = s->hnext)
			if (s->state == S_ONLINE && (ev->tenant_id == 0 || ev->tenant_id == s->tenant)) {
				/* the pile needs the new model even if its current code matches ours */
				if (!s->pile_model[0])
					snprintf(s->pile_model, sizeof s->pile_model, "%s", "0000");
				tariff_fetch(s);
			}
	return EVCS_OK;
}

void on_model_verify(struct sess *s, const struct evcs_ykc_frame *f, const struct evcs_ykc_model_verify *v)
{
	memcpy(s->pile_model, v->model, sizeof s->pile_model);
	struct evcs_ykc_msg m;
	msg_init(&m, 0x06);
	memcpy(m.u.model.pile, s->pile, sizeof s->pile);
	memcpy(m.u.model.model, v->model, sizeof v->model);
	/* 0 = same as the platform; 1 = different: the pile must ask with 0x09 */
	m.u.model.result = s->have_tariff && strcmp(v->model, s->tariff.model) == 0 ? 0 : 1;
	send_msg(s, &m, f->seq, NULL);
	if (!s->have_tariff)
		tariff_fetch(s);
}

void on_model_request(struct sess *s, const struct evcs_ykc_frame *f)
{
	if (s->have_tariff) {
		send_tariff(s, 0x0A, f->seq, NULL);
		memcpy(s->pile_model, s->tariff.model, sizeof s->pile_model);
		return;
	}
	/* answered when the model arrives; §6.7: a pile without a model does not charge */
	memcpy(s->pending_0a_seq, f->seq, 2);
	s->pending_0a = 1;
	tariff_fetch(s);
}
