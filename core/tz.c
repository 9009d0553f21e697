/* tz.c: placeholder filled in by the ABI 2 work (see abi2.h). */
#include "abi2.h"
#include "core.h"

void evcs_tz_fill(evcs_api_t *a) { (void)a; }
