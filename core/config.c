/* config.c: strict INI parser; see config.h for the format and the rules. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Keys the core knows in its own sections. A typo in one of these sections is
 * an error, not a silently ignored line. */
static const char *const core_keys[] = {"log_level", "log_target", "workers", "plugin_dir",
					"script_dir", "tenant_script_dir", "state_dir",
					"timezone", "pid_file", "shutdown_timeout", "schema_dir", NULL};
static const char *const http_keys[] = {"listen", "tls_cert", "tls_key", "max_body",
					"timeout", NULL};
static const char *const db_keys[] = {"host", "port", "socket", "user", "password", "name",
				      "pool", "connect_timeout", "queue_max", "required", NULL};
static const char *const api_keys[] = {"bootstrap_token", "command_timeout", "page_max",
				       NULL};
static const char *const script_keys[] = {"memory_limit", "instruction_limit",
					  "amount_tolerance", NULL};
static const struct {
	const char *name;
	const char *const *keys;
} known_sections[] = {{"core", core_keys},     {"http", http_keys}, {"database", db_keys},
		      {"api", api_keys},       {"scripts", script_keys}, {"plugin", NULL},
		      {NULL, NULL}};
static const char *const plugin_core_keys[] = {"file", "required", "enabled", NULL};

__attribute__((format(printf, 5, 6))) static void seterr(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	int n = line > 0 ? snprintf(err, errlen, "%s:%d: ", name, line)
			 : snprintf(err, errlen, "%s: ", name);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

static int valid_ident(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

static int in_list(const char *const *l, const char *k)
{
	for (; l && *l; l++)
		if (strcmp(*l, k) == 0)
			return 1;
	return 0;
}

void evcs_conf_free(evcs_conf_t *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nsec; i++) {
		for (size_t j = 0; j < c->sec[i].nkv; j++) {
			free(c->sec[i].kv[j].key);
			free(c->sec[i].kv[j].value);
		}
		free(c->sec[i].kv);
		free(c->sec[i].name);
		free(c->sec[i].arg);
	}
	free(c->sec);
	free(c->path);
	free(c);
}

static int validate(evcs_conf_t *c, const char *name, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->nsec; i++) {
		evcs_conf_section_t *s = &c->sec[i];
		int k;
		for (k = 0; known_sections[k].name; k++)
			if (strcmp(known_sections[k].name, s->name) == 0)
				break;
		if (!known_sections[k].name) {
			seterr(err, errlen, name, s->line,
			       "unknown section [%s] (known: core, http, database, api, scripts, plugin NAME)",
			       s->name);
			return -1;
		}
		int is_plugin = strcmp(s->name, "plugin") == 0;
		if (is_plugin && !s->arg) {
			seterr(err, errlen, name, s->line, "[plugin] needs a name: [plugin NAME]");
			return -1;
		}
		if (!is_plugin && s->arg) {
			seterr(err, errlen, name, s->line, "[%s] takes no argument", s->name);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			evcs_conf_section_t *o = &c->sec[j];
			if (strcmp(o->name, s->name) == 0 &&
			    ((!o->arg && !s->arg) || (o->arg && s->arg && !strcmp(o->arg, s->arg)))) {
				seterr(err, errlen, name, s->line,
				       "duplicate section [%s%s%s] (first at line %d)", s->name,
				       s->arg ? " " : "", s->arg ? s->arg : "", o->line);
				return -1;
			}
		}
		for (size_t j = 0; j < s->nkv; j++) {
			evcs_conf_kv_t *kv = &s->kv[j];
			if (!is_plugin && !in_list(known_sections[k].keys, kv->key)) {
				seterr(err, errlen, name, kv->line, "unknown key '%s' in [%s]",
				       kv->key, s->name);
				return -1;
			}
			for (size_t m = 0; m < j; m++)
				if (strcmp(s->kv[m].key, kv->key) == 0) {
					seterr(err, errlen, name, kv->line,
					       "duplicate key '%s' (first at line %d)", kv->key,
					       s->kv[m].line);
					return -1;
				}
			if (is_plugin && in_list(plugin_core_keys, kv->key) &&
			    strcmp(kv->key, "file") != 0 && evcs_conf_bool(kv->value, 0) < 0) {
				seterr(err, errlen, name, kv->line,
				       "'%s' must be yes or no, not '%s'", kv->key, kv->value);
				return -1;
			}
		}
	}
	return 0;
}

evcs_conf_t *evcs_conf_parse(const char *text, const char *name, char *err, size_t errlen)
{
	evcs_conf_t *c = calloc(1, sizeof *c);
	char *copy = strdup(text ? text : "");
	if (!c || !copy) {
		free(c);
		free(copy);
		seterr(err, errlen, name, 0, "out of memory");
		return NULL;
	}
	c->path = strdup(name ? name : "config");
	int lineno = 0;
	char *save = NULL;
	evcs_conf_section_t *cur = NULL;
	/* strtok_r would merge empty lines and break line counting: walk by hand */
	for (char *p = copy; p; p = save) {
		char *nl = strchr(p, '\n');
		if (nl) {
			*nl = 0;
			save = nl + 1;
		} else {
			save = NULL;
		}
		lineno++;
		char *l = trim(p);
		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *close = strchr(l, ']');
			if (!close || trim(close + 1)[0] != 0) {
				seterr(err, errlen, name, lineno, "bad section header '%s'", l);
				goto fail;
			}
			*close = 0;
			char *inner = trim(l + 1);
			char *sp = strpbrk(inner, " \t");
			char *arg = NULL;
			if (sp) {
				*sp = 0;
				arg = trim(sp + 1);
			}
			if (!valid_ident(inner) || (arg && !valid_ident(arg))) {
				seterr(err, errlen, name, lineno, "bad section name '[%s%s%s]'", inner,
				       arg ? " " : "", arg ? arg : "");
				goto fail;
			}
			evcs_conf_section_t *ns = realloc(c->sec, (c->nsec + 1) * sizeof *ns);
			if (!ns)
				goto oom;
			c->sec = ns;
			cur = &c->sec[c->nsec++];
			memset(cur, 0, sizeof *cur);
			cur->name = strdup(inner);
			cur->arg = arg ? strdup(arg) : NULL;
			cur->line = lineno;
			continue;
		}
		char *eq = strchr(l, '=');
		if (!eq) {
			seterr(err, errlen, name, lineno, "expected 'key = value', got '%s'", l);
			goto fail;
		}
		*eq = 0;
		char *key = trim(l), *val = trim(eq + 1);
		if (!valid_ident(key)) {
			seterr(err, errlen, name, lineno, "bad key '%s'", key);
			goto fail;
		}
		if (!cur) {
			seterr(err, errlen, name, lineno, "key '%s' outside any [section]", key);
			goto fail;
		}
		size_t vl = strlen(val);
		if (vl && val[0] == '"') {
			if (vl < 2 || val[vl - 1] != '"') {
				seterr(err, errlen, name, lineno, "unterminated quote in value of '%s'",
				       key);
				goto fail;
			}
			val[vl - 1] = 0;
			val++;
		}
		evcs_conf_kv_t *nk = realloc(cur->kv, (cur->nkv + 1) * sizeof *nk);
		if (!nk)
			goto oom;
		cur->kv = nk;
		nk[cur->nkv].key = strdup(key);
		nk[cur->nkv].value = strdup(val);
		nk[cur->nkv].line = lineno;
		cur->nkv++;
	}
	free(copy);
	if (validate(c, name, err, errlen) < 0) {
		evcs_conf_free(c);
		return NULL;
	}
	return c;
oom:
	seterr(err, errlen, name, lineno, "out of memory");
fail:
	free(copy);
	evcs_conf_free(c);
	return NULL;
}

evcs_conf_t *evcs_conf_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		seterr(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				seterr(err, errlen, path, 0, "out of memory");
				return NULL;
			}
			buf = nb;
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		free(buf);
		seterr(err, errlen, path, 0, "read error");
		return NULL;
	}
	if (buf)
		buf[len] = 0;
	if (buf && memchr(buf, 0, len)) {
		free(buf);
		seterr(err, errlen, path, 0, "file contains a NUL byte");
		return NULL;
	}
	evcs_conf_t *c = evcs_conf_parse(buf ? buf : "", path, err, errlen);
	free(buf);
	return c;
}

const evcs_conf_section_t *evcs_conf_section(const evcs_conf_t *c, const char *name,
					       const char *arg)
{
	for (size_t i = 0; c && i < c->nsec; i++)
		if (strcmp(c->sec[i].name, name) == 0 &&
		    (!arg || (c->sec[i].arg && strcmp(c->sec[i].arg, arg) == 0)))
			return &c->sec[i];
	return NULL;
}

static const evcs_conf_kv_t *skv(const evcs_conf_section_t *s, const char *key)
{
	for (size_t i = 0; s && i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	return NULL;
}

const char *evcs_conf_sget(const evcs_conf_section_t *s, const char *key)
{
	const evcs_conf_kv_t *kv = skv(s, key);
	return kv ? kv->value : NULL;
}

const char *evcs_conf_get(const evcs_conf_t *c, const char *name, const char *key,
			  const char *def)
{
	const char *v = evcs_conf_sget(evcs_conf_section(c, name, NULL), key);
	return v ? v : def;
}

int evcs_conf_sint(const evcs_conf_section_t *s, const char *path, const char *key,
		   long long def, long long min, long long max, long long *out, char *err,
		   size_t errlen)
{
	const evcs_conf_kv_t *kv = skv(s, key);
	if (!kv || !*kv->value) {
		*out = def;
		return 0;
	}
	errno = 0;
	char *end;
	long long v = strtoll(kv->value, &end, 10);
	long long mult = 1;
	/* size suffixes for byte counts: 64k, 16M, 1G */
	if (end != kv->value && (*end == 'k' || *end == 'K'))
		mult = 1024, end++;
	else if (end != kv->value && (*end == 'm' || *end == 'M'))
		mult = 1024 * 1024, end++;
	else if (end != kv->value && (*end == 'g' || *end == 'G'))
		mult = 1024LL * 1024 * 1024, end++;
	if (errno || end == kv->value || *end) {
		seterr(err, errlen, path ? path : "config", kv->line,
		       "'%s' must be an integer, not '%s'", key, kv->value);
		return -1;
	}
	if ((v > 0 && v > max / mult) || (v < 0 && v < min / mult) || v * mult < min ||
	    v * mult > max) {
		seterr(err, errlen, path ? path : "config", kv->line,
		       "'%s' = %s is out of range [%lld, %lld]", key, kv->value, min, max);
		return -1;
	}
	*out = v * mult;
	return 0;
}

int evcs_conf_int(const evcs_conf_t *c, const char *name, const char *key, long long def,
		  long long min, long long max, long long *out, char *err, size_t errlen)
{
	return evcs_conf_sint(evcs_conf_section(c, name, NULL), c ? c->path : NULL, key, def, min,
			      max, out, err, errlen);
}

int evcs_conf_bool(const char *v, int def)
{
	if (!v || !*v)
		return def;
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") ||
	    !strcmp(v, "1"))
		return 1;
	if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
	    !strcmp(v, "0"))
		return 0;
	return -1;
}

int evcs_conf_hostport(const char *v, char *host, size_t hostlen, int *port)
{
	if (!v || !*v)
		return -1;
	const char *colon;
	const char *h = v;
	size_t hl;
	if (*v == '[') {
		const char *rb = strchr(v, ']');
		if (!rb || rb[1] != ':')
			return -1;
		h = v + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (int)p;
	return 0;
}
