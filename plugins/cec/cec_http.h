/*
 * cec_http.h: non-blocking HTTP POST client for the CEC plugin: libcurl's multi interface
 * driven by libevent (curl_multi_socket_action from socket events, curl's timer callback on a
 * libevent timer), so no call ever blocks the core's loop.
 *
 * Contract: loop thread only. cec_http_post copies url, headers and body; the done callback
 * runs exactly once on the loop (never inside cec_http_post), with the HTTP status (0 when no
 * response arrived), the response body (borrowed, NUL-terminated) and curl's error text.
 * cec_http_free cancels transfers in flight without calling their callbacks.
 */
#ifndef EVCS_CEC_HTTP_H
#define EVCS_CEC_HTTP_H

#include <stddef.h>

struct event_base;
typedef struct cec_http cec_http_t;

typedef void (*cec_http_done)(long status, const char *body, size_t len, const char *err, void *ud);

cec_http_t *cec_http_new(struct event_base *base, long timeout_ms);
void cec_http_free(cec_http_t *h);
/* bearer may be NULL (query_token). Returns 0, or -1 (the callback will not run). */
int cec_http_post(cec_http_t *h, const char *url, const char *bearer, const char *body, cec_http_done done,
		  void *ud);
/* Transfers in flight. */
size_t cec_http_active(const cec_http_t *h);

#endif
