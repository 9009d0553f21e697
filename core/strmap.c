/* strmap.c: see strmap.h. Deletion uses backward-shift so no tombstones pile up
 * under the churn of piles connecting and disconnecting. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ent {
	char *key;
	void *val;
	uint32_t hash;
};

struct evcs_strmap {
	struct ent *t;
	size_t cap; /* power of two */
	size_t n;
};

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h ? h : 1;
}

evcs_strmap_t *evcs_strmap_new(void)
{
	evcs_strmap_t *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->cap = 16;
	m->t = calloc(m->cap, sizeof *m->t);
	if (!m->t) {
		free(m);
		return NULL;
	}
	return m;
}

void evcs_strmap_free(evcs_strmap_t *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->t[i].key);
	free(m->t);
	free(m);
}

static size_t find(const evcs_strmap_t *m, const char *key, uint32_t h, int *found)
{
	size_t mask = m->cap - 1, i = h & mask;
	while (m->t[i].key) {
		if (m->t[i].hash == h && strcmp(m->t[i].key, key) == 0) {
			*found = 1;
			return i;
		}
		i = (i + 1) & mask;
	}
	*found = 0;
	return i;
}

void *evcs_strmap_get(const evcs_strmap_t *m, const char *key)
{
	int f;
	size_t i = find(m, key, hash_str(key), &f);
	return f ? m->t[i].val : NULL;
}

static int grow(evcs_strmap_t *m)
{
	size_t ncap = m->cap * 2;
	struct ent *nt = calloc(ncap, sizeof *nt);
	if (!nt)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->t[i].key)
			continue;
		size_t j = m->t[i].hash & (ncap - 1);
		while (nt[j].key)
			j = (j + 1) & (ncap - 1);
		nt[j] = m->t[i];
	}
	free(m->t);
	m->t = nt;
	m->cap = ncap;
	return 0;
}

void *evcs_strmap_put(evcs_strmap_t *m, const char *key, void *val, int *err)
{
	if (err)
		*err = 0;
	uint32_t h = hash_str(key);
	int f;
	size_t i = find(m, key, h, &f);
	if (f) {
		void *old = m->t[i].val;
		m->t[i].val = val;
		return old;
	}
	if ((m->n + 1) * 4 > m->cap * 3) {
		if (grow(m) < 0)
			goto oom;
		i = find(m, key, h, &f);
	}
	char *k = strdup(key);
	if (!k)
		goto oom;
	m->t[i].key = k;
	m->t[i].val = val;
	m->t[i].hash = h;
	m->n++;
	return NULL;
oom:
	if (err)
		*err = 1;
	return NULL;
}

void *evcs_strmap_del(evcs_strmap_t *m, const char *key)
{
	int f;
	size_t i = find(m, key, hash_str(key), &f);
	if (!f)
		return NULL;
	void *old = m->t[i].val;
	free(m->t[i].key);
	m->t[i].key = NULL;
	m->n--;
	size_t mask = m->cap - 1, j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!m->t[j].key)
			break;
		size_t home = m->t[j].hash & mask;
		/* move j back into the hole at i if its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			m->t[i] = m->t[j];
			m->t[j].key = NULL;
			i = j;
		}
	}
	return old;
}

size_t evcs_strmap_count(const evcs_strmap_t *m) { return m ? m->n : 0; }

void evcs_strmap_each(const evcs_strmap_t *m, void (*fn)(const char *, void *, void *), void *ud)
{
	for (size_t i = 0; m && i < m->cap; i++)
		if (m->t[i].key)
			fn(m->t[i].key, m->t[i].val, ud);
}
