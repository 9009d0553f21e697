/* api.c: the operator REST API (being written). */
#include "core.h"

int evcs_api_init(evcs_core_t *core) { (void)core; return 0; }
void evcs_api_free(evcs_core_t *core) { (void)core; }
