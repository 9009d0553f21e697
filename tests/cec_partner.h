/*
 * tests/cec_partner.h: a CEC partner platform (the customer-operator / data-demand side) for
 * tests, written with the protocol library only.
 *
 * Server side: an evhttp server on 127.0.0.1 (ephemeral port) in its own thread with its own
 * event_base. It implements query_token for evcsd and every push evcsd sends
 * (notification_*, check_charge_orders), checks envelope, signature, token and Data exactly as
 * a real partner would, records every acknowledged push in arrival order, and acknowledges it.
 * It can be switched "down" (HTTP 503, no envelope: nothing recorded) and can forget the tokens
 * it issued (the next push gets Ret 4002).
 * Client side: blocking libcurl calls to evcsd's routes, signed and encrypted with the keys
 * evcsd expects from this partner.
 *
 * Threading: every function may be called from any thread except the server thread; recorded
 * messages are guarded by a mutex. Memory: cec_psim_msgs returns a new json_t the caller
 * json_decref's; call results own their data (cec_call_clear).
 */
#ifndef EVCS_TEST_CEC_PARTNER_H
#define EVCS_TEST_CEC_PARTNER_H

#include "cec_model.h"
#include "cec_proto.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct cec_psim cec_psim_t;

typedef struct cec_psim_cfg {
	const char *partner_id;      /* its OperatorID (9) */
	const char *evcs_id;         /* evcsd's OperatorID towards it (9) */
	cec_keys_t evcs_keys;        /* keys evcsd signs its pushes with (partner's user_* in evcsd) */
	const char *evcs_secret;     /* the OperatorSecret evcsd must present to our query_token */
	int64_t token_ttl;           /* seconds */
} cec_psim_cfg_t;

cec_psim_t *cec_psim_start(const cec_psim_cfg_t *cfg);
void cec_psim_stop(cec_psim_t *s);
int cec_psim_port(cec_psim_t *s);
void cec_psim_set_down(cec_psim_t *s, bool down);
void cec_psim_forget_tokens(cec_psim_t *s);
/* Pushes recorded so far: [{"iface":..., "data":{...}}...] in arrival order. */
json_t *cec_psim_msgs(cec_psim_t *s);
size_t cec_psim_count(cec_psim_t *s, const char *iface);
/* Requests refused since start by Ret code (4001, 4002, ...) or HTTP 503 while down (code 503). */
unsigned cec_psim_refused(cec_psim_t *s, int code);
unsigned cec_psim_tokens_issued(cec_psim_t *s);

/* ---- client towards evcsd ---- */
typedef struct cec_client {
	const char *base;        /* "http://127.0.0.1:PORT/evcs/v1/" */
	const char *operator_id; /* this partner's OperatorID */
	const char *secret;      /* OperatorSecret evcsd expects */
	cec_keys_t keys;         /* keys evcsd verifies our requests with */
	cec_profile_t profile;
	cec_stamp_t stamp;
	char token[CEC_TOKEN_LEN + 1];
} cec_client_t;

typedef struct cec_call {
	long http;      /* HTTP status */
	int ret;        /* Ret from the reply envelope (-1000 if none) */
	char msg[256];
	json_t *data;   /* decrypted reply Data, or NULL */
	bool signed_ok; /* reply Sig verified */
	char *raw;      /* reply body */
} cec_call_t;

void cec_call_clear(cec_call_t *r);
/* Raw POST of body to base+iface with an optional bearer; parses the reply as well as it can. */
int cec_client_post(cec_client_t *c, const char *iface, const char *body, const char *bearer, cec_call_t *out);
/* Signed/encrypted call of iface with data (stolen: call with a fresh json_pack), using c->token
 * unless iface is query_token. */
int cec_client_call(cec_client_t *c, const char *iface, json_t *data, cec_call_t *out);
/* query_token; fills c->token. 0 on SuccStat 0. */
int cec_client_login(cec_client_t *c);
/* An envelope signed with the right keys around an arbitrary Data string (for 4004 tests). */
char *cec_client_envelope(cec_client_t *c, const char *data_text, bool good_sig);

#endif
