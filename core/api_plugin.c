/* api_plugin.c: placeholder filled in by the ABI 2 work (see abi2.h). */
#include "abi2.h"
#include "core.h"

void evcs_api_plugin_fill(evcs_api_t *a) { (void)a; }
void evcs_api_plugin_drop_owner(struct evcs_core *core, struct evcs_plugin *p)
{
	(void)core;
	(void)p;
}
