/*
 * strmap.h: a small string-keyed hash map (open addressing, linear probing).
 * Keys are copied; values are borrowed void pointers the caller owns.
 * Not thread-safe: used on the loop thread only.
 */
#ifndef EVCS_STRMAP_H
#define EVCS_STRMAP_H

#include <stddef.h>

typedef struct evcs_strmap evcs_strmap_t;

evcs_strmap_t *evcs_strmap_new(void);
void evcs_strmap_free(evcs_strmap_t *m); /* values are not freed */
void *evcs_strmap_get(const evcs_strmap_t *m, const char *key);
/* Insert or replace; returns the previous value (or NULL). -1 cast on OOM is not used:
 * returns NULL and sets *err=1 on allocation failure when err != NULL. */
void *evcs_strmap_put(evcs_strmap_t *m, const char *key, void *val, int *err);
void *evcs_strmap_del(evcs_strmap_t *m, const char *key);
size_t evcs_strmap_count(const evcs_strmap_t *m);
/* Visit every entry; the callback must not modify the map. */
void evcs_strmap_each(const evcs_strmap_t *m, void (*fn)(const char *key, void *val, void *ud),
		      void *ud);

#endif
