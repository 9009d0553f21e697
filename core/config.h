/*
 * config.h: the evcsd configuration file (INI), parsed strictly.
 *
 *   # comment                    whole-line comments only (values may hold '#')
 *   [core]                       section
 *   [plugin NAME]                section with an argument (the plugin name)
 *   key = value                  value runs to end of line, trimmed; "quoted" keeps spaces
 *
 * Errors name the file and line: "evcsd.conf:12: unknown key 'lgo_level' in [core]".
 * The core validates its own sections ([core] [http] [database] [api]) and the
 * core keys of [plugin NAME] (file, required, enabled); other plugin keys belong
 * to the plugin and are read through api->config_get.
 * A parsed config is immutable; reload parses a new one and swaps on success.
 */
#ifndef EVCS_CONFIG_H
#define EVCS_CONFIG_H

#include <stddef.h>

typedef struct evcs_conf_kv {
	char *key, *value;
	int line;
} evcs_conf_kv_t;

typedef struct evcs_conf_section {
	char *name; /* "core", "plugin" */
	char *arg;  /* NAME for [plugin NAME], else NULL */
	int line;
	evcs_conf_kv_t *kv;
	size_t nkv;
} evcs_conf_section_t;

typedef struct evcs_conf {
	char *path;
	evcs_conf_section_t *sec;
	size_t nsec;
} evcs_conf_t;

/* Parse and validate. On error returns NULL and writes "path:line: message" to err. */
evcs_conf_t *evcs_conf_load(const char *path, char *err, size_t errlen);
/* Same from a string (tests, evcsctl); `name` is used in messages. */
evcs_conf_t *evcs_conf_parse(const char *text, const char *name, char *err, size_t errlen);
void evcs_conf_free(evcs_conf_t *c);

/* First section with this name (and arg, when arg != NULL). */
const evcs_conf_section_t *evcs_conf_section(const evcs_conf_t *c, const char *name,
					       const char *arg);
/* Value of key in a section, or NULL. */
const char *evcs_conf_sget(const evcs_conf_section_t *s, const char *key);
/* Shorthand: value of [name] key, or def. */
const char *evcs_conf_get(const evcs_conf_t *c, const char *name, const char *key,
			  const char *def);
/* Strict integer: 0 ok (def when unset), -1 bad/out of range (message in err with line). */
int evcs_conf_int(const evcs_conf_t *c, const char *name, const char *key, long long def,
		  long long min, long long max, long long *out, char *err, size_t errlen);
int evcs_conf_sint(const evcs_conf_section_t *s, const char *path, const char *key,
		   long long def, long long min, long long max, long long *out, char *err,
		   size_t errlen);
/* yes/no/true/false/on/off/1/0: 1/0, def when unset, -1 when junk */
int evcs_conf_bool(const char *v, int def);
/* Split "host:port" / "[v6]:port"; 0 ok. host buffer gets the host. */
int evcs_conf_hostport(const char *v, char *host, size_t hostlen, int *port);

#endif
