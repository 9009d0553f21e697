/*
 * core/script_cli.c: `evcsctl script check|quote|slots`, for working on a
 * tenant script offline in exactly the sandbox and limits the daemon uses
 * (evcs_script_limits_default, unless overridden by options).
 *
 * Exit status: 0 ok, 1 the script or session was rejected (message on
 * stderr), 2 usage error. Output goes to stdout; script log lines to stderr.
 */
#include "script.h"

#include "tz.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_top(FILE *f)
{
	fprintf(f,
		"Usage: evcsctl script [OPTIONS] COMMAND ARGS...\n"
		"Work on a tenant Lua script offline, in the daemon's sandbox and limits.\n"
		"\n"
		"Commands:\n"
		"  check FILE                 compile FILE and run its self-tests\n"
		"  quote FILE SESSION.json    price a session, print the itemised bill as JSON\n"
		"  slots FILE                 print the four rates and the 48-slot map a pile is sent\n"
		"\n"
		"Options (also accepted after COMMAND):\n"
		"  --tenant N          tenant id the script runs as (default 1)\n"
		"  --slot NAME         script name (check only; default: alarms for alarms*.lua, else tariff)\n"
		"  --mem BYTES         memory cap per script state (default 8388608)\n"
		"  --instructions N    instruction budget per call (default 2000000)\n"
		"  --time-ms N         wall-clock budget per call (default 50)\n"
		"  --max-string BYTES  largest single allocation (default 1048576)\n"
		"  --timezone NAME     IANA zone of local time: os.date/os.time/evcs.date, the tariff\n"
		"                      slot of each half hour, session times without an offset\n"
		"                      (default Asia/Shanghai; a session's own \"tz\" wins)\n"
		"  --tz-offset MIN     a fixed UTC offset in minutes instead of a zone\n"
		"  -h, --help          this help; `evcsctl script COMMAND --help` for one command\n");
}

static const char *const cmd_help[][2] = {
    {"check", "Usage: evcsctl script check [OPTIONS] FILE\n"
	      "Compiles FILE in a fresh sandbox, runs it, validates tariff() if defined and runs\n"
	      "every function in its `tests` table. Exit 0 when the daemon would accept it;\n"
	      "otherwise exit 1 with the reason (the daemon would keep the previous version).\n"},
    {"quote", "Usage: evcsctl script quote [OPTIONS] FILE SESSION.json\n"
	      "Loads FILE as the tenant's tariff script and prints the bill for the session in\n"
	      "SESSION.json (\"-\" = stdin). Format: scripts/README.md, \"Session JSON\".\n"},
    {"slots", "Usage: evcsctl script slots [OPTIONS] [--json] [--pile SERIAL] FILE\n"
	      "Prints the model code, the electricity and service rate of each period and the\n"
	      "48 half-hour slots a charger's billing model carries. --json prints them in the\n"
	      "storage field names (model, sharp_elec_rate ... slots).\n"},
};

static char *read_all(const char *path, size_t max, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f) {
		perror(path);
		return NULL;
	}
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	if (f != stdin)
		fclose(f);
	if (!buf)
		return NULL;
	if (n > max) {
		fprintf(stderr, "%s: larger than %zu bytes\n", path, max);
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

static void cli_log(int64_t tenant, const char *slot, int level, const char *msg, void *ud)
{
	(void)tenant;
	(void)slot;
	(void)ud;
	/* only script output: failures come back as *err and are printed once */
	if (level == EVCS_LOG_INFO)
		fprintf(stderr, "%s\n", msg);
}

static int load(evcs_script_engine_t *e, int64_t tenant, const char *slot, const char *path)
{
	char *err = NULL;
	if (evcs_script_load_file(e, tenant, slot, path, &err) != 0) {
		fprintf(stderr, "%s\n", err ? err : "load failed");
		free(err);
		return 1;
	}
	return 0;
}

static void print_slots(const evcs_tariff_model_t *m, const evcs_tz_t *z)
{
	char b1[32], b2[32], b3[32];
	printf("model %s\n", m->model);
	printf("local time %s\n", z ? evcs_tz_name(z) : EVCS_TZ_DEFAULT);
	printf("%-8s %12s %12s %12s  (yuan/kWh)\n", "period", "electricity", "service", "total");
	for (int p = 0; p < 4; p++)
		printf("%-8s %12s %12s %12s\n", evcs_period_name(p),
		       evcs_decimal_format(m->elec[p], 5, b1, sizeof(b1)),
		       evcs_decimal_format(m->service[p], 5, b2, sizeof(b2)),
		       evcs_decimal_format(m->elec[p] + m->service[p], 5, b3, sizeof(b3)));
	printf("slots:");
	for (int i = 0; i < EVCS_SLOTS; i++)
		printf(" %d", m->slots[i]);
	printf("\n");
	for (int i = 0; i < EVCS_SLOTS;) {
		int j = i;
		while (j < EVCS_SLOTS && m->slots[j] == m->slots[i])
			j++;
		printf("  %02d:%02d-%02d:%02d %s\n", i / 2, i % 2 * 30, j / 2, j % 2 * 30,
		       evcs_period_name(m->slots[i]));
		i = j;
	}
}

int evcs_script_cli_main(int argc, char **argv)
{
	evcs_script_limits_t lim;
	evcs_script_limits_default(&lim);
	int64_t tenant = 1;
	const char *slot = NULL, *pile = NULL, *zone = NULL;
	int json = 0, help = 0;
	static const struct option opts[] = {
	    {"tenant", required_argument, NULL, 't'},
	    {"slot", required_argument, NULL, 's'},
	    {"mem", required_argument, NULL, 'm'},
	    {"instructions", required_argument, NULL, 'i'},
	    {"time-ms", required_argument, NULL, 'w'},
	    {"max-string", required_argument, NULL, 'x'},
	    {"tz-offset", required_argument, NULL, 'z'},
	    {"timezone", required_argument, NULL, 'Z'},
	    {"json", no_argument, NULL, 'j'},
	    {"pile", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	optind = 1;
	opterr = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1 || optind < argc) {
		if (c == -1) {
			/* a non-option (the command or a file): keep scanning after it,
			 * so options may follow the command */
			optind++;
			continue;
		}
		char *end = NULL;
		long long v = 0;
		if (optarg && c != 's' && c != 'p' && c != 'Z') {
			v = strtoll(optarg, &end, 10);
			if (!*optarg || *end || (v < 0 && c != 'z') || (c == 'z' && (v < -900 || v > 900))) {
				fprintf(stderr, "script: bad number '%s'\n", optarg);
				return 2;
			}
		}
		switch (c) {
		case 't': tenant = v; break;
		case 's': slot = optarg; break;
		case 'm': lim.mem_bytes = (size_t)v; break;
		case 'i': lim.instructions = (uint64_t)v; break;
		case 'w': lim.wall_ms = (unsigned)v; break;
		case 'x': lim.max_string = (size_t)v; break;
		case 'z': lim.tz = evcs_tz_fixed((int)v * 60); break;
		case 'Z': zone = optarg; break;
		case 'j': json = 1; break;
		case 'p': pile = optarg; break;
		case 'h': help = 1; break;
		default: usage_top(stderr); return 2;
		}
	}
	/* collect positionals (getopt_long with '+' stops reordering) */
	const char *pos[4];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] != 0) {
			const char *o = argv[i];
			int takes = !strcmp(o, "--tenant") || !strcmp(o, "--slot") || !strcmp(o, "--mem") ||
				    !strcmp(o, "--instructions") || !strcmp(o, "--time-ms") ||
				    !strcmp(o, "--max-string") || !strcmp(o, "--tz-offset") ||
				    !strcmp(o, "--timezone") || !strcmp(o, "--pile");
			if (takes && !strchr(o, '='))
				i++;
			continue;
		}
		if (np < 4)
			pos[np++] = argv[i];
		else
			np++;
	}
	if (np == 0) {
		usage_top(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	const char *cmd = pos[0];
	int ci = -1;
	for (int i = 0; i < 3; i++)
		if (!strcmp(cmd, cmd_help[i][0]))
			ci = i;
	if (ci < 0) {
		fprintf(stderr, "script: unknown command '%s'\n", cmd);
		usage_top(stderr);
		return 2;
	}
	if (help) {
		fputs(cmd_help[ci][1], stdout);
		return 0;
	}
	int want = ci == 1 ? 3 : 2;
	if (np != want) {
		fputs(cmd_help[ci][1], stderr);
		return 2;
	}
	if (zone) {
		char why[256];
		if (!(lim.tz = evcs_tz_get(zone, why, sizeof why))) {
			fprintf(stderr, "script: --timezone: %s\n", why);
			return 2;
		}
	}
	evcs_script_engine_t *e = evcs_script_engine_new(&lim);
	if (!e)
		return 1;
	evcs_script_engine_set_log(e, cli_log, NULL);
	int rc = 1;
	const char *file = pos[1];
	if (ci == 0) {
		if (!slot) {
			const char *b = strrchr(file, '/');
			b = b ? b + 1 : file;
			slot = !strncmp(b, "alarms", 6) ? "alarms" : "tariff";
		}
		if (load(e, tenant, slot, file) == 0) {
			printf("ok: %s accepted as script '%s' of tenant %" PRId64 " (sha256 %s)\n", file,
			       slot, tenant, evcs_script_digest(e, tenant, slot));
			printf("subscribes:");
			for (uint32_t t = 1; t < 64; t++)
				if (evcs_script_subscribed(e, tenant, t))
					printf(" %s", evcs_script_event_name(t));
			printf("\n");
			rc = 0;
		}
	} else if (ci == 1) {
		size_t len;
		char *text = NULL, *err = NULL;
		evcs_session_t s;
		memset(&s, 0, sizeof(s));
		if (load(e, tenant, "tariff", file) != 0)
			goto out;
		if (!(text = read_all(pos[2], 64u << 20, &len)))
			goto out;
		if (evcs_session_from_json_in(text, lim.tz, &s, &err) != 0) {
			fprintf(stderr, "%s: %s\n", pos[2], err ? err : "invalid session");
			free(err);
			free(text);
			goto out;
		}
		free(text);
		if (!s.tenant_id)
			s.tenant_id = tenant;
		evcs_bill_t bill;
		if (evcs_script_quote(e, tenant, &s, &bill, &err) != 0) {
			fprintf(stderr, "%s\n", err ? err : "quote failed");
			free(err);
		} else {
			char *j = evcs_bill_to_json(&bill);
			if (j) {
				printf("%s\n", j);
				free(j);
				rc = 0;
			}
		}
		evcs_session_clear(&s);
	} else {
		char *err = NULL;
		evcs_tariff_model_t m;
		if (load(e, tenant, "tariff", file) != 0)
			goto out;
		if (evcs_script_tariff(e, tenant, pile, &m, &err) != 0) {
			fprintf(stderr, "%s\n", err ? err : "tariff() failed");
			free(err);
			goto out;
		}
		if (json) {
			char *j = evcs_tariff_to_json(&m);
			if (j) {
				printf("%s\n", j);
				free(j);
			}
		} else {
			print_slots(&m, lim.tz);
		}
		rc = 0;
	}
out:
	evcs_script_engine_free(e);
	return rc;
}
