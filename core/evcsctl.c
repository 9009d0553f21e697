/*
 * evcsctl.c: the admin command line. It talks to a running daemon's HTTP API
 * (health, metrics, tenants, piles, sessions, commands), works offline on files
 * (config check, tenant scripts), and hands any other subcommand to the plugin
 * that declares it (`evcsctl NAME ...`), so the core CLI knows no protocol.
 *
 * Exit status: 0 success, 1 the operation failed (HTTP error, bad file), 2 usage.
 */
#include "autoconfig.h"
#include "config.h"
#include "core.h"

#include <curl/curl.h>
#include <dirent.h>
#include <dlfcn.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int evcs_script_cli_main(int argc, char **argv); /* script_cli.c */

static const char *g_url, *g_token, *g_plugin_dir;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: evcsctl [--url URL] [--token TOKEN] [--plugin-dir DIRS] COMMAND [ARGS]\n\n"
		"Talk to a running evcsd (URL default $EVCS_URL or http://127.0.0.1:8080,\n"
		"token default $EVCS_TOKEN):\n"
		"  health                         readiness of the daemon (exit 1 when not ready)\n"
		"  metrics                        the Prometheus metrics\n"
		"  tenants list | create NAME [MAX_PILES]\n"
		"  piles list | show SERIAL | register SERIAL STATION_ID [PROTOCOL] | unclaimed\n"
		"  sessions list | show ID\n"
		"  command SERIAL NAME [--gun N] [--args JSON]   start, stop, set_tariff, reboot, time_sync...\n"
		"  api METHOD PATH [JSON]         any operator API call\n\n"
		"Offline:\n"
		"  config check FILE              parse a configuration file strictly\n"
		"  script check|quote|slots ...   work on a tenant Lua script (see `evcsctl script --help`)\n"
		"  plugins                        list plugins and the subcommands they add\n\n"
		"Plugin subcommands (found in the plugin directory, $EVCS_PLUGIN_DIR):\n"
		"  NAME ARGS...                   a subcommand a plugin adds (listed by `evcsctl plugins`)\n\n"
		"Every command takes --help.\n");
}

/* ---- HTTP --------------------------------------------------------------- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *ud)
{
	struct buf *b = ud;
	size_t len = sz * nm;
	char *np = realloc(b->p, b->n + len + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, d, len);
	b->n += len;
	b->p[b->n] = 0;
	return len;
}

/* Perform a request; prints the body (pretty JSON when it is JSON) to stdout.
 * Returns the HTTP status, or -1 when the daemon could not be reached. */
static long http_call(const char *method, const char *path, const char *body, int print)
{
	CURL *c = curl_easy_init();
	if (!c)
		return -1;
	char *url = NULL;
	if (asprintf(&url, "%s%s", g_url, path) < 0) {
		curl_easy_cleanup(c);
		return -1;
	}
	struct buf b = {NULL, 0};
	struct curl_slist *h = NULL;
	char auth[512];
	if (g_token && *g_token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", g_token);
		h = curl_slist_append(h, auth);
	}
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(c);
	long status = -1;
	if (rc != CURLE_OK) {
		fprintf(stderr, "evcsctl: cannot reach %s: %s\n", url, curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (print && b.p) {
			json_t *j = json_loads(b.p, 0, NULL);
			if (j) {
				char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
				printf("%s\n", s);
				free(s);
				json_decref(j);
			} else {
				fputs(b.p, stdout);
			}
		}
		if (status >= 400)
			fprintf(stderr, "evcsctl: %s %s: HTTP %ld\n", method, path, status);
	}
	free(b.p);
	free(url);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static int http_exit(long status) { return status >= 200 && status < 300 ? 0 : 1; }

static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

static int cmd_simple(int argc, char **argv, const char *path, const char *help)
{
	if (wants_help(argc, argv)) {
		printf("%s\n", help);
		return 0;
	}
	return http_exit(http_call("GET", path, NULL, 1));
}

static int cmd_tenants(int argc, char **argv)
{
	if (argc < 2 || wants_help(argc, argv)) {
		printf("Usage: evcsctl tenants list\n       evcsctl tenants create NAME [MAX_PILES]\n");
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "list"))
		return http_exit(http_call("GET", "/api/v1/tenants", NULL, 1));
	if (!strcmp(argv[1], "create") && argc >= 3) {
		json_t *o = json_pack("{s:s}", "name", argv[2]);
		if (argc >= 4)
			json_object_set_new(o, "max_piles", json_integer(atoll(argv[3])));
		char *s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		long st = http_call("POST", "/api/v1/tenants", s, 1);
		free(s);
		return http_exit(st);
	}
	fprintf(stderr, "evcsctl tenants: unknown or incomplete subcommand\n");
	return 2;
}

static int cmd_piles(int argc, char **argv)
{
	if (argc < 2 || wants_help(argc, argv)) {
		printf("Usage: evcsctl piles list\n       evcsctl piles show SERIAL\n"
		       "       evcsctl piles register SERIAL STATION_ID [PROTOCOL]\n"
		       "       evcsctl piles unclaimed\n");
		return argc < 2 ? 2 : 0;
	}
	char path[256];
	if (!strcmp(argv[1], "list"))
		return http_exit(http_call("GET", "/api/v1/piles", NULL, 1));
	if (!strcmp(argv[1], "unclaimed"))
		return http_exit(http_call("GET", "/api/v1/piles/unclaimed", NULL, 1));
	if (!strcmp(argv[1], "show") && argc >= 3) {
		snprintf(path, sizeof path, "/api/v1/piles/%s", argv[2]);
		return http_exit(http_call("GET", path, NULL, 1));
	}
	if (!strcmp(argv[1], "register") && argc >= 4) {
		json_t *o = json_pack("{s:s, s:I}", "serial", argv[2], "station_id",
				      (json_int_t)atoll(argv[3]));
		if (argc >= 5) /* else the API's default protocol applies */
			json_object_set_new(o, "protocol", json_string(argv[4]));
		char *s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		long st = http_call("POST", "/api/v1/piles", s, 1);
		free(s);
		return http_exit(st);
	}
	fprintf(stderr, "evcsctl piles: unknown or incomplete subcommand\n");
	return 2;
}

static int cmd_sessions(int argc, char **argv)
{
	if (argc < 2 || wants_help(argc, argv)) {
		printf("Usage: evcsctl sessions list\n       evcsctl sessions show ID\n");
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "list"))
		return http_exit(http_call("GET", "/api/v1/sessions", NULL, 1));
	if (!strcmp(argv[1], "show") && argc >= 3) {
		char path[256];
		snprintf(path, sizeof path, "/api/v1/sessions/%s", argv[2]);
		return http_exit(http_call("GET", path, NULL, 1));
	}
	return 2;
}

static int cmd_command(int argc, char **argv)
{
	if (argc < 3 || wants_help(argc, argv)) {
		printf("Usage: evcsctl command SERIAL NAME [--gun N] [--args JSON]\n"
		       "Sends a command to a pile through the daemon and prints the pile's answer\n"
		       "(or a timeout/offline error). NAME: start, stop, set_tariff, reboot,\n"
		       "time_sync, read_realtime, work_params, ...\n");
		return argc < 3 ? 2 : 0;
	}
	json_t *o = json_pack("{s:s}", "command", argv[2]);
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--gun"))
			json_object_set_new(o, "gun", json_integer(atoi(argv[i + 1])));
		else if (!strcmp(argv[i], "--args")) {
			json_t *a = json_loads(argv[i + 1], 0, NULL);
			if (!a) {
				fprintf(stderr, "evcsctl command: --args is not JSON\n");
				json_decref(o);
				return 2;
			}
			json_object_set_new(o, "args", a);
		}
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	char path[256];
	snprintf(path, sizeof path, "/api/v1/piles/%s/commands", argv[1]);
	long st = http_call("POST", path, s, 1);
	free(s);
	return http_exit(st);
}

static int cmd_api(int argc, char **argv)
{
	if (argc < 3 || wants_help(argc, argv)) {
		printf("Usage: evcsctl api METHOD PATH [JSON]\n");
		return argc < 3 ? 2 : 0;
	}
	return http_exit(http_call(argv[1], argv[2], argc > 3 ? argv[3] : NULL, 1));
}

static int cmd_config(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "check") != 0 || wants_help(argc, argv)) {
		printf("Usage: evcsctl config check FILE\n");
		return wants_help(argc, argv) ? 0 : 2;
	}
	char err[512];
	evcs_conf_t *c = evcs_conf_load(argv[2], err, sizeof err);
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	evcs_conf_free(c);
	printf("%s: syntax OK (use `evcsd --check-config -c %s` to also probe plugins)\n", argv[2],
	       argv[2]);
	return 0;
}

/* ---- plugin subcommands ---------------------------------------------------- */

typedef int (*plugin_visit)(const char *path, const evcs_plugin_info_t *info, void *dl, void *ud);

/* Visit every *.so in the plugin directories; stops when visit returns non-zero
 * (the handle then stays open and the value is returned). */
static int each_plugin(plugin_visit visit, void *ud)
{
	const char *d = g_plugin_dir;
	while (d && *d) {
		const char *e = strchr(d, ':');
		size_t dl_ = e ? (size_t)(e - d) : strlen(d);
		char dir[1024];
		snprintf(dir, sizeof dir, "%.*s", (int)dl_, d);
		DIR *dh = opendir(dir);
		struct dirent *de;
		while (dh && (de = readdir(dh))) {
			size_t n = strlen(de->d_name);
			if (n < 4 || strcmp(de->d_name + n - 3, ".so") != 0)
				continue;
			char path[2048], err[512];
			const evcs_plugin_info_t *info;
			void *h;
			/* probe by file name inside this one directory (relative dirs work too) */
			if (evcs_plugin_probe(dir, de->d_name, de->d_name, path, sizeof path, &info, &h,
					      err, sizeof err) != EVCS_OK)
				continue;
			int r = visit(path, info, h, ud);
			if (r) {
				closedir(dh);
				return r;
			}
			dlclose(h);
		}
		if (dh)
			closedir(dh);
		d += dl_ + (e ? 1 : 0);
	}
	return 0;
}

static int list_visit(const char *path, const evcs_plugin_info_t *info, void *dl, void *ud)
{
	int has_cli = info->size >= offsetof(evcs_plugin_info_t, reserved) && info->cli_name;
	printf("%-10s %-8s ABI %u.%u  %s%s%s%s\n", info->name, info->version, info->abi_major,
	       info->abi_minor, path, has_cli ? "\n           evcsctl " : "",
	       has_cli ? info->cli_name : "", has_cli && info->cli_summary ? "  " : "");
	if (has_cli && info->cli_summary)
		printf("%s\n", info->cli_summary);
	return 0;
}

struct find_cli {
	const char *name;
	int argc;
	char **argv;
	int rc;
};

static int cli_visit(const char *path, const evcs_plugin_info_t *info, void *dl, void *ud)
{
	struct find_cli *f = ud;
	if (info->size < offsetof(evcs_plugin_info_t, reserved) || !info->cli_name ||
	    !info->cli_main || strcmp(info->cli_name, f->name) != 0)
		return 0;
	f->rc = info->cli_main(f->argc, f->argv);
	dlclose(dl);
	return 1;
}

int main(int argc, char **argv)
{
	g_url = getenv("EVCS_URL") ? getenv("EVCS_URL") : "http://127.0.0.1:8080";
	g_token = getenv("EVCS_TOKEN");
	g_plugin_dir = getenv("EVCS_PLUGIN_DIR") ? getenv("EVCS_PLUGIN_DIR") : EVCS_PLUGINDIR;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("evcsctl %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, EVCS_ABI_MAJOR,
			       EVCS_ABI_MINOR);
			return 0;
		} else if (i + 1 < argc && !strcmp(argv[i], "--url")) {
			g_url = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--token")) {
			g_token = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--plugin-dir")) {
			g_plugin_dir = argv[++i];
		} else {
			fprintf(stderr, "evcsctl: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	int sargc = argc - i;
	char **sargv = argv + i;
	const char *cmd = sargv[0];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc;
	if (!strcmp(cmd, "health")) {
		rc = cmd_simple(sargc, sargv, "/healthz",
				"Usage: evcsctl health\nPrints the daemon's readiness; exit 1 when not ready.");
	} else if (!strcmp(cmd, "metrics")) {
		rc = cmd_simple(sargc, sargv, "/metrics", "Usage: evcsctl metrics");
	} else if (!strcmp(cmd, "tenants")) {
		rc = cmd_tenants(sargc, sargv);
	} else if (!strcmp(cmd, "piles")) {
		rc = cmd_piles(sargc, sargv);
	} else if (!strcmp(cmd, "sessions")) {
		rc = cmd_sessions(sargc, sargv);
	} else if (!strcmp(cmd, "command")) {
		rc = cmd_command(sargc, sargv);
	} else if (!strcmp(cmd, "api")) {
		rc = cmd_api(sargc, sargv);
	} else if (!strcmp(cmd, "config")) {
		rc = cmd_config(sargc, sargv);
	} else if (!strcmp(cmd, "script")) {
		rc = evcs_script_cli_main(sargc, sargv);
	} else if (!strcmp(cmd, "plugins")) {
		printf("plugin directories: %s\n", g_plugin_dir);
		each_plugin(list_visit, NULL);
		rc = 0;
	} else {
		struct find_cli f = {cmd, sargc, sargv, 0};
		if (each_plugin(cli_visit, &f)) {
			rc = f.rc;
		} else {
			fprintf(stderr,
				"evcsctl: unknown command '%s' (no plugin in %s provides it; see --help)\n",
				cmd, g_plugin_dir);
			rc = 2;
		}
	}
	curl_global_cleanup();
	return rc;
}
