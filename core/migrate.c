/* migrate.c: `evcsd --migrate` (filled in with the data layer). */
#include <stdio.h>
int evcs_migrate_main(const char *conf_path);
int evcs_migrate_main(const char *conf_path)
{
	fprintf(stderr, "evcsd: --migrate: no data layer built yet (%s)\n", conf_path);
	return 1;
}
