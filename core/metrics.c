/* metrics.c: see metrics.h. */
#include "metrics.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

struct evcs_metric {
	char *name, *help, *owner;
	int kind;
	int64_t v;
	int64_t (*fn)(void *);
	void *ud;
};

struct evcs_metrics {
	evcs_metric_t **v;
	size_t n, cap;
};

evcs_metrics_t *evcs_metrics_new(void) { return calloc(1, sizeof(evcs_metrics_t)); }

static void metric_free(evcs_metric_t *mt)
{
	free(mt->name);
	free(mt->help);
	free(mt->owner);
	free(mt);
}

void evcs_metrics_free(evcs_metrics_t *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		metric_free(m->v[i]);
	free(m->v);
	free(m);
}

static int valid_name(const char *n)
{
	if (!n || !*n || !((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || *n == '_'))
		return 0;
	for (; *n && *n != '{'; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
		      (*n >= '0' && *n <= '9') || *n == '_' || *n == ':'))
			return 0;
	return *n == 0 || n[strlen(n) - 1] == '}';
}

evcs_metric_t *evcs_metric_fn(evcs_metrics_t *m, const char *owner, const char *name,
			      const char *help, int kind, int64_t (*fn)(void *), void *ud)
{
	if (!m || !valid_name(name) ||
	    (kind != EVCS_METRIC_COUNTER && kind != EVCS_METRIC_GAUGE))
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i]->name, name) == 0)
			return m->v[i];
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 32;
		evcs_metric_t **nv = realloc(m->v, ncap * sizeof *nv);
		if (!nv)
			return NULL;
		m->v = nv;
		m->cap = ncap;
	}
	evcs_metric_t *mt = calloc(1, sizeof *mt);
	if (!mt)
		return NULL;
	mt->name = strdup(name);
	mt->help = strdup(help ? help : "");
	mt->owner = strdup(owner ? owner : "core");
	mt->kind = kind;
	mt->fn = fn;
	mt->ud = ud;
	m->v[m->n++] = mt;
	return mt;
}

evcs_metric_t *evcs_metric_new(evcs_metrics_t *m, const char *owner, const char *name,
			       const char *help, int kind)
{
	return evcs_metric_fn(m, owner, name, help, kind, NULL, NULL);
}

void evcs_metric_add(evcs_metric_t *mt, int64_t d)
{
	if (mt)
		mt->v += d;
}
void evcs_metric_set(evcs_metric_t *mt, int64_t v)
{
	if (mt)
		mt->v = v;
}
int64_t evcs_metric_value(const evcs_metric_t *mt)
{
	return mt ? (mt->fn ? mt->fn(mt->ud) : mt->v) : 0;
}

void evcs_metrics_drop_owner(evcs_metrics_t *m, const char *owner)
{
	size_t w = 0;
	for (size_t r = 0; r < m->n; r++) {
		if (strcmp(m->v[r]->owner, owner) == 0)
			metric_free(m->v[r]);
		else
			m->v[w++] = m->v[r];
	}
	m->n = w;
}

static size_t base_len(const char *n)
{
	const char *b = strchr(n, '{');
	return b ? (size_t)(b - n) : strlen(n);
}

void evcs_metrics_render(evcs_metrics_t *m, struct evbuffer *out)
{
	/* group by base name in registration order of the first member */
	char *done = calloc(m->n ? m->n : 1, 1);
	if (!done)
		return;
	for (size_t i = 0; i < m->n; i++) {
		if (done[i])
			continue;
		evcs_metric_t *h = m->v[i];
		size_t bl = base_len(h->name);
		evbuffer_add_printf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)bl, h->name,
				    h->help, (int)bl, h->name,
				    h->kind == EVCS_METRIC_COUNTER ? "counter" : "gauge");
		for (size_t j = i; j < m->n; j++) {
			evcs_metric_t *x = m->v[j];
			if (done[j] || base_len(x->name) != bl || strncmp(x->name, h->name, bl) != 0)
				continue;
			done[j] = 1;
			evbuffer_add_printf(out, "%s %lld\n", x->name,
					    (long long)evcs_metric_value(x));
		}
	}
	free(done);
}
