/*
 * main.c: evcsd's command line. See `evcsd --help` and evcsd(8).
 */
#include "autoconfig.h"
#include "config.h"
#include "core.h"
#include "abi2.h"
#include "db.h"
#include "log.h"
#include "tz.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef EVCS_SYSCONFDIR
#define EVCS_SYSCONFDIR "/etc/evcs"
#endif

int evcs_migrate_main(const char *conf_path); /* migrate.c */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: evcsd [OPTIONS]\n"
		"EV charging operator server (chargers, tariffs, interconnect through plugins).\n\n"
		"  -c, --config FILE   configuration file (default %s/evcsd.conf)\n"
		"  -f, --foreground    stay in the foreground (use under systemd)\n"
		"      --check-config  parse the configuration, probe the plugins, and exit\n"
		"      --migrate       apply pending database schema migrations (the core's, then\n"
		"                      each configured plugin's) and exit\n"
		"  -V, --version       print the version and plugin ABI, and exit\n"
		"  -h, --help          this help\n\n"
		"Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads configuration and scripts.\n",
		EVCS_SYSCONFDIR);
}

static int check_config(const char *path)
{
	char err[512];
	evcs_conf_t *c = evcs_conf_load(path, err, sizeof err);
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int bad = 0;
	if (evcs_log_parse_level(evcs_conf_get(c, "core", "log_level", "info")) < 0) {
		fprintf(stderr, "%s: [core] log_level: unknown level\n", path);
		bad = 1;
	}
	char host[128];
	int port;
	const char *listen = evcs_conf_get(c, "http", "listen", "127.0.0.1:8080");
	if (evcs_conf_hostport(listen, host, sizeof host, &port) < 0) {
		fprintf(stderr, "%s: [http] listen: expected HOST:PORT, got '%s'\n", path, listen);
		bad = 1;
	}
	const evcs_tz_t *tz;
	if (evcs_tz_conf_default(c, &tz, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		bad = 1;
	}
	long long v;
	static const struct {
		const char *sec, *key;
		long long def, min, max;
	} ints[] = {{"core", "workers", 4, 1, 256},
		    {"core", "shutdown_timeout", 10000, 0, 600000},
		    {"http", "max_body", 1048576, 1024, 1LL << 30},
		    {"http", "timeout", 60, 1, 3600},
		    {"database", "port", 3306, 0, 65535},
		    {"database", "pool", 4, 1, 64},
		    {"database", "connect_timeout", 5, 1, 300},
		    {"database", "queue_max", 100000, 1, 10000000},
		    {NULL, NULL, 0, 0, 0}};
	for (int i = 0; ints[i].sec; i++)
		if (evcs_conf_int(c, ints[i].sec, ints[i].key, ints[i].def, ints[i].min, ints[i].max,
				  &v, err, sizeof err) < 0) {
			fprintf(stderr, "%s\n", err);
			bad = 1;
		}
	const char *dirs = evcs_conf_get(c, "core", "plugin_dir", EVCS_PLUGINDIR);
	for (size_t i = 0; i < c->nsec; i++) {
		const evcs_conf_section_t *s = &c->sec[i];
		if (strcmp(s->name, "plugin") != 0 || evcs_conf_bool(evcs_conf_sget(s, "enabled"), 1) == 0)
			continue;
		char p[1024];
		const evcs_plugin_info_t *info;
		void *dl;
		if (evcs_plugin_probe(dirs, s->arg, evcs_conf_sget(s, "file"), p, sizeof p, &info, &dl,
				      err, sizeof err) != EVCS_OK) {
			fprintf(stderr, "%s:%d: %s\n", path, s->line, err);
			bad = 1;
			continue;
		}
		printf("plugin %s %s (ABI %u.%u): %s\n", s->arg, info->version, info->abi_major,
		       info->abi_minor, p);
		/* its own schema: numbering and table prefixes (the database is not contacted) */
		const evcs_migration_t *migs = evcs_plugin_info_migrations(info);
		int n = evcs_db_plugin_migrations_valid(info->name, migs, err, sizeof err);
		if (n < 0) {
			fprintf(stderr, "%s:%d: %s\n", path, s->line, err);
			bad = 1;
		} else if (n > 0) {
			printf("plugin %s: %d schema migration(s)%s\n", s->arg, n,
			       evcs_conf_section(c, "database", NULL) ? "" : ", but no [database] section");
			if (!evcs_conf_section(c, "database", NULL))
				bad = 1;
		}
		dlclose(dl);
	}
	evcs_conf_free(c);
	if (!bad)
		printf("%s: configuration OK\n", path);
	return bad;
}

static int write_pidfile(const char *path)
{
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "w");
	if (!f) {
		evcs_err("core", "cannot write pid file %s", path);
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf = EVCS_SYSCONFDIR "/evcsd.conf";
	int foreground = 0, check = 0, migrate = 0;
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"foreground", no_argument, NULL, 'f'},
					     {"check-config", no_argument, NULL, 1},
					     {"migrate", no_argument, NULL, 2},
					     {"version", no_argument, NULL, 'V'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "c:fVh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': conf = optarg; break;
		case 'f': foreground = 1; break;
		case 1: check = 1; break;
		case 2: migrate = 1; break;
		case 'V':
			printf("evcsd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, EVCS_ABI_MAJOR,
			       EVCS_ABI_MINOR);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "evcsd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (check)
		return check_config(conf);
	if (migrate)
		return evcs_migrate_main(conf);

	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "evcsd: libevent has no pthreads support\n");
		return 1;
	}
	if (!foreground) {
		/* Classic double-fork-free daemon: fork, setsid, detach stdio. Under
		 * systemd use -f (the packaged unit does). */
		pid_t pid = fork();
		if (pid < 0) {
			perror("evcsd: fork");
			return 1;
		}
		if (pid > 0)
			return 0;
		setsid();
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			if (!getenv("EVCS_KEEP_STDERR"))
				dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		if (chdir("/") < 0)
			return 1;
	}
	evcs_core_t core;
	memset(&core, 0, sizeof core);
	char err[512] = "";
	if (evcs_core_start(&core, conf, err, sizeof err) < 0) {
		evcs_err("core", "cannot start: %s", err);
		if (foreground && evcs_log_level() < EVCS_LOG_ERR)
			fprintf(stderr, "evcsd: %s\n", err);
		evcs_core_free(&core);
		return 1;
	}
	write_pidfile(evcs_conf_get(core.conf, "core", "pid_file", NULL));
	evcs_notice("core", "evcsd %s running (pid %ld, plugin ABI %d.%d, HTTP port %d)",
		    PACKAGE_VERSION, (long)getpid(), EVCS_ABI_MAJOR, EVCS_ABI_MINOR,
		    evcs_http_port(core.http));
	event_base_dispatch(core.base);
	int code = core.exit_code;
	const char *pidf = evcs_conf_get(core.conf, "core", "pid_file", NULL);
	if (pidf && *pidf)
		unlink(pidf);
	evcs_core_free(&core);
	evcs_notice("core", "stopped");
	return code;
}
