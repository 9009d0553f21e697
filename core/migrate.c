/* migrate.c: `evcsd --migrate`: apply pending schema migrations, blocking,
 * before any loop exists. Prints what it did; exit 0 on success. */
#include "config.h"
#include "core.h"
#include "db.h"

#include <stdio.h>

int evcs_migrate_main(const char *conf_path);

int evcs_migrate_main(const char *conf_path)
{
	char err[512];
	evcs_conf_t *c = evcs_conf_load(conf_path, err, sizeof err);
	if (!c) {
		fprintf(stderr, "evcsd: %s\n", err);
		return 1;
	}
	evcs_db_config_t dc;
	int r = evcs_core_db_config(c, &dc, err, sizeof err);
	if (r == -1) {
		fprintf(stderr, "evcsd: --migrate: %s has no [database] section\n", conf_path);
		evcs_conf_free(c);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "evcsd: %s\n", err);
		evcs_conf_free(c);
		return 1;
	}
	int from = 0, to = 0;
	const char *dir = evcs_core_schema_dir(c);
	r = evcs_db_migrate(&dc, dir, &from, &to, err, sizeof err);
	if (r != EVCS_OK) {
		fprintf(stderr, "evcsd: migration failed: %s\n", err);
		evcs_conf_free(c);
		return 1;
	}
	if (from == to)
		printf("schema is up to date (version %d, %s)\n", to, dir);
	else
		printf("schema migrated from version %d to %d (%s)\n", from, to, dir);
	evcs_conf_free(c);
	return 0;
}
