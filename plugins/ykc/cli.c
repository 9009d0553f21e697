/*
 * plugins/ykc/cli.c: `evcsctl ykc decode|split` (§7.1, §7.4). Stdout carries only
 * JSON, one object per line; diagnostics and usage errors go to stderr (usage for
 * --help goes to stdout). Exit statuses: decode 0 clean / 1 any error object /
 * 2 usage or bad hex; split 0 / 2 bad hex or usage. Runs in the evcsctl process,
 * single-threaded; allocation is fine here.
 */
#include "codec.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_top[] =
	"usage: evcsctl ykc decode [--proto 1.5|1.6] HEX...\n"
	"       evcsctl ykc split [--proto 1.5|1.6] < HEXTEXT\n"
	"\n"
	"  decode  decode one YKC frame per argument; prints one JSON object per line\n"
	"  split   split a hex-encoded TCP stream read from stdin into frames (one JSON object)\n"
	"\n"
	"Hex digits in either case; whitespace is ignored. --proto defaults to 1.6;\n"
	"with 1.5 the V1.6-only types 0xA1-0xA4, 0xF0 and 0xF1 are unknown_type.\n";
static const char usage_decode[] =
	"usage: evcsctl ykc decode [--proto 1.5|1.6] HEX...\n"
	"Exit status: 0 all frames good, 1 any error object, 2 usage error or bad hex.\n";
static const char usage_split[] =
	"usage: evcsctl ykc split [--proto 1.5|1.6] < HEXTEXT\n"
	"Exit status: 0 input processed, 2 usage error or bad hex.\n";

static void emit(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	json_decref(o);
}

static void emit_bad_hex(const char *why)
{
	emit(json_pack("{s:s,s:[s]}", "error", "bad_hex", "problems", why));
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse hex text, whitespace ignored. Returns a malloc'd buffer (caller frees) or
 * NULL with why[] filled. *out_n gets the byte count. */
static uint8_t *parse_hex(const char *s, size_t slen, size_t *out_n, char *why, size_t whycap)
{
	uint8_t *buf = malloc(slen / 2 + 1);
	if (!buf) {
		snprintf(why, whycap, "out of memory");
		return NULL;
	}
	size_t n = 0, digits = 0;
	int hi = 0;
	for (size_t i = 0; i < slen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isspace(c))
			continue;
		int v = hexval(c);
		if (v < 0) {
			if (c >= 0x20 && c < 0x7F)
				snprintf(why, whycap, "non-hex character '%c' at position %zu", c, i);
			else
				snprintf(why, whycap, "non-hex byte 0x%02X at position %zu", c, i);
			free(buf);
			return NULL;
		}
		if (digits++ % 2 == 0)
			hi = v;
		else
			buf[n++] = (uint8_t)(hi << 4 | v);
	}
	if (digits % 2) {
		snprintf(why, whycap, "odd number of hex digits (%zu)", digits);
		free(buf);
		return NULL;
	}
	*out_n = n;
	return buf;
}

static bool is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* Parses [--proto V] [--] options; returns the index of the first operand, -1 on a
 * usage error (reported), or -2 when help was printed. */
static int parse_opts(int argc, char **argv, const char *usage, enum evcs_ykc_proto *proto)
{
	int i = 2;
	*proto = EVCS_YKC_PROTO_16;
	while (i < argc) {
		const char *a = argv[i], *v = NULL;
		if (is_help(a)) {
			fputs(usage, stdout);
			return -2;
		}
		if (strcmp(a, "--") == 0)
			return i + 1;
		if (strcmp(a, "--proto") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "ykc: --proto needs a value (1.5 or 1.6)\n%s", usage);
				return -1;
			}
			v = argv[i + 1];
			i += 2;
		} else if (strncmp(a, "--proto=", 8) == 0) {
			v = a + 8;
			i++;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "ykc: unknown option %s\n%s", a, usage);
			return -1;
		} else {
			return i;
		}
		if (strcmp(v, "1.5") == 0 || strcmp(v, "15") == 0)
			*proto = EVCS_YKC_PROTO_15;
		else if (strcmp(v, "1.6") == 0 || strcmp(v, "16") == 0)
			*proto = EVCS_YKC_PROTO_16;
		else {
			fprintf(stderr, "ykc: --proto must be 1.5 or 1.6, not '%s'\n%s", v, usage);
			return -1;
		}
	}
	return i;
}

static int cmd_decode(int argc, char **argv)
{
	enum evcs_ykc_proto proto;
	int first = parse_opts(argc, argv, usage_decode, &proto);
	if (first == -2)
		return 0;
	if (first < 0)
		return 2;
	if (first >= argc) {
		fprintf(stderr, "ykc decode: no frame given\n%s", usage_decode);
		emit_bad_hex("no frame given");
		return 2;
	}
	int status = 0;
	for (int i = first; i < argc; i++) {
		char why[128];
		size_t n = 0;
		uint8_t *b = parse_hex(argv[i], strlen(argv[i]), &n, why, sizeof(why));
		if (!b) {
			emit_bad_hex(why);
			status = 2;
			continue;
		}
		const char *err = NULL;
		json_t *o = evcs_ykc_json_decode(b, n, proto, &err);
		free(b);
		if (!o) {
			fprintf(stderr, "ykc decode: out of memory\n");
			return 1;
		}
		emit(o);
		if (err && status == 0)
			status = 1;
	}
	return status;
}

static int cmd_split(int argc, char **argv)
{
	enum evcs_ykc_proto proto;
	int first = parse_opts(argc, argv, usage_split, &proto);
	if (first == -2)
		return 0;
	if (first < 0)
		return 2;
	if (first < argc) {
		fprintf(stderr, "ykc split: reads hex from stdin; unexpected argument '%s'\n%s", argv[first],
			usage_split);
		return 2;
	}
	size_t cap = 4096, len = 0;
	char *text = malloc(cap);
	if (!text)
		return 1;
	size_t got;
	while ((got = fread(text + len, 1, cap - len, stdin)) > 0) {
		len += got;
		if (len == cap) {
			char *t = realloc(text, cap * 2);
			if (!t) {
				free(text);
				fprintf(stderr, "ykc split: out of memory\n");
				return 1;
			}
			text = t;
			cap *= 2;
		}
	}
	if (ferror(stdin)) {
		free(text);
		fprintf(stderr, "ykc split: error reading stdin\n");
		return 1;
	}
	char why[128];
	size_t n = 0;
	uint8_t *b = parse_hex(text, len, &n, why, sizeof(why));
	free(text);
	if (!b) {
		emit_bad_hex(why);
		return 2;
	}
	json_t *o = evcs_ykc_json_split(b, n, proto);
	free(b);
	if (!o) {
		fprintf(stderr, "ykc split: out of memory\n");
		return 1;
	}
	emit(o);
	return 0;
}

int evcs_ykc_cli_main(int argc, char **argv)
{
	int rc;
	if (argc < 2) {
		fputs(usage_top, stderr);
		return 2;
	}
	if (is_help(argv[1])) {
		fputs(usage_top, stdout);
		return 0;
	}
	if (strcmp(argv[1], "decode") == 0)
		rc = cmd_decode(argc, argv);
	else if (strcmp(argv[1], "split") == 0)
		rc = cmd_split(argc, argv);
	else {
		fprintf(stderr, "ykc: unknown subcommand '%s'\n%s", argv[1], usage_top);
		return 2;
	}
	fflush(stdout);
	return rc;
}
