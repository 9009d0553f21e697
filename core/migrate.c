/*
 * migrate.c: `evcsd --migrate`: read [database] from the config file, apply the pending
 * schema migrations from the installed schema directory (EVCS_SCHEMADIR; the environment
 * variable EVCS_SCHEMA_DIR overrides it, e.g. to run from a source tree), then those of every
 * configured and enabled [plugin NAME], in configuration order (each plugin is opened without
 * init to read its descriptor's `migrations`), and exit. The core first: plugin migrations may
 * reference the core's tables, and the plugins' version table is a core migration (008).
 * Blocking, runs before any event loop; errors go to stderr, progress to stdout. Exit status 0
 * on success (also when everything was already current), 1 on any failure (the first failure
 * stops the run; what was applied before it stays applied and recorded).
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "abi2.h"

#include <dlfcn.h>
#include <string.h>

#include <stdio.h>
#include <stdlib.h>

int evcs_migrate_main(const char *conf_path);

/* Each enabled [plugin NAME] in order: probe it, apply its migrations. 0 or 1 (exit status). */
static int migrate_plugins(const evcs_conf_t *conf, const evcs_db_config_t *cfg)
{
	const char *dirs = evcs_conf_get(conf, "core", "plugin_dir", EVCS_PLUGINDIR);
	for (size_t i = 0; i < conf->nsec; i++) {
		const evcs_conf_section_t *s = &conf->sec[i];
		if (strcmp(s->name, "plugin") != 0 || evcs_conf_bool(evcs_conf_sget(s, "enabled"), 1) == 0)
			continue;
		char path[1024], err[1024];
		const evcs_plugin_info_t *info = NULL;
		void *dl = NULL;
		if (evcs_plugin_probe(dirs, s->arg, evcs_conf_sget(s, "file"), path, sizeof path, &info,
				      &dl, err, sizeof err) != EVCS_OK) {
			if (evcs_conf_bool(evcs_conf_sget(s, "required"), 1)) {
				fprintf(stderr, "evcsd: --migrate failed: %s:%d: %s\n", conf->path, s->line,
					err);
				return 1;
			}
			fprintf(stderr, "evcsd: --migrate: %s:%d: %s (optional plugin: skipped)\n",
				conf->path, s->line, err);
			continue;
		}
		const evcs_migration_t *migs = evcs_plugin_info_migrations(info);
		int from = 0, to = 0, rc = 0;
		if (migs && migs[0].version != 0)
			rc = evcs_db_migrate_plugin(cfg, info->name, migs, &from, &to, err, sizeof err);
		else
			rc = 1; /* nothing to do */
		if (rc == 0 && from == to)
			printf("evcsd: plugin %s: schema is current (version %d)\n", info->name, to);
		else if (rc == 0)
			printf("evcsd: plugin %s: schema migrated from version %d to %d\n", info->name,
			       from, to);
		dlclose(dl);
		if (rc < 0) {
			fprintf(stderr, "evcsd: --migrate failed: %s\n", err);
			return 1;
		}
	}
	return 0;
}

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
	if (rc != 0) {
		fprintf(stderr, "evcsd: --migrate failed: %s\n", err);
		evcs_conf_free(conf);
		return 1;
	}
	if (from == to)
		printf("evcsd: database schema is current (version %d)\n", to);
	else
		printf("evcsd: database schema migrated from version %d to %d\n", from, to);
	int status = migrate_plugins(conf, &cfg);
	evcs_conf_free(conf);
	return status;
}
