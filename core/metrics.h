/*
 * metrics.h: a registry of counters and gauges rendered in the Prometheus text
 * exposition format. Updates are plain int64 stores on the loop thread (no
 * locks); a metric may also be computed at render time by a callback (for
 * values owned elsewhere: DB queue depth, connection counts).
 * Names may carry labels: `evcs_frames_total{type="0x03"}`; HELP/TYPE lines are
 * emitted once per base name.
 */
#ifndef EVCS_METRICS_H
#define EVCS_METRICS_H

#include <evcs/plugin.h>

struct evbuffer;
typedef struct evcs_metrics evcs_metrics_t;

evcs_metrics_t *evcs_metrics_new(void);
void evcs_metrics_free(evcs_metrics_t *m);
/* Returns the existing metric when the full name is already registered. */
evcs_metric_t *evcs_metric_new(evcs_metrics_t *m, const char *owner, const char *name,
			       const char *help, int kind);
evcs_metric_t *evcs_metric_fn(evcs_metrics_t *m, const char *owner, const char *name,
			      const char *help, int kind, int64_t (*fn)(void *ud), void *ud);
void evcs_metric_add(evcs_metric_t *mt, int64_t d);
void evcs_metric_set(evcs_metric_t *mt, int64_t v);
int64_t evcs_metric_value(const evcs_metric_t *mt);
/* Remove every metric registered by owner (plugin unload). */
void evcs_metrics_drop_owner(evcs_metrics_t *m, const char *owner);
void evcs_metrics_render(evcs_metrics_t *m, struct evbuffer *out);

#endif
