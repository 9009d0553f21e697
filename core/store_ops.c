/* store_ops.c: the built-in storage operations (being written: see plugins/README.md). */
#include "store.h"

void evcs_store_register_builtin(evcs_store_t *s) { (void)s; }
