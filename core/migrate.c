/*
 * migrate.c: `evcsd --migrate`: read [database] from the config file, apply the pending
 * schema migrations from the installed schema directory (EVCS_SCHEMADIR; the environment
 * variable EVCS_SCHEMA_DIR overrides it, e.g. to run from a source tree) and exit.
 * Blocking, runs before any event loop; messages go to stderr. Exit status 0 on success
 * (also when the schema was already current), 1 on any failure.
 */
#include "config.h"
#include "core.h"
#include "db.h"

#include <stdio.h>
#include <stdlib.h>

int evcs_migrate_main(const char *conf_path);

int evcs_migrate_main(const char *conf_path)
{
	char err[1024] = "";
	evcs_conf_t *conf = evcs_conf_load(conf_path, err, sizeof err);
	if (!conf) {
		fprintf(stderr, "evcsd: %s\n", err);
		return 1;
	}
	if (!evcs_conf_section(conf, "database", NULL)) {
		fprintf(stderr, "evcsd: --migrate: %s has no [database] section\n", conf_path);
		evcs_conf_free(conf);
		return 1;
	}
	evcs_db_config_t cfg;
	if (evcs_db_config_from_conf(conf, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "evcsd: %s\n", err);
		evcs_conf_free(conf);
		return 1;
	}
	const char *dir = evcs_core_schema_dir(conf);
	int from = 0, to = 0;
	int rc = evcs_db_migrate(&cfg, dir, &from, &to, err, sizeof err);
	evcs_conf_free(conf);
	if (rc != 0) {
		fprintf(stderr, "evcsd: --migrate failed: %s\n", err);
		return 1;
	}
	if (from == to)
		printf("evcsd: database schema is current (version %d)\n", to);
	else
		printf("evcsd: database schema migrated from version %d to %d\n", from, to);
	return 0;
}
