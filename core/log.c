/* log.c: see log.h. The level check is a plain int read so disabled debug
 * lines cost one comparison on the hot path. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_level = EVCS_LOG_INFO;
static int g_syslog;

static const char *const level_names[8] = {"emerg", "alert", "crit", "err",
					   "warning", "notice", "info", "debug"};

void evcs_log_setup(int level, int to_syslog, const char *ident)
{
	g_level = level;
	if (to_syslog && !g_syslog)
		openlog(ident ? ident : "evcsd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!to_syslog && g_syslog)
		closelog();
	g_syslog = to_syslog;
}

int evcs_log_level(void) { return g_level; }

int evcs_log_parse_level(const char *s)
{
	for (int i = 3; i < 8; i++)
		if (s && strcmp(s, level_names[i]) == 0)
			return i;
	if (s && strcmp(s, "error") == 0)
		return EVCS_LOG_ERR;
	if (s && strcmp(s, "warn") == 0)
		return EVCS_LOG_WARNING;
	return -1;
}

const char *evcs_log_level_name(int level)
{
	return (level >= 0 && level < 8) ? level_names[level] : "?";
}

void evcs_logv(int level, const char *component, int64_t tenant, const char *pile,
	       const char *fmt, va_list ap)
{
	if (level > g_level)
		return;
	char line[EVCS_LOG_LINE_MAX];
	size_t n = 0;
	int w;
	if (!g_syslog) {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		w = snprintf(line + n, sizeof line - n, ".%03dZ %-7s ", (int)(tv.tv_usec / 1000),
			     evcs_log_level_name(level));
		n += w > 0 ? (size_t)w : 0;
	}
	w = snprintf(line + n, sizeof line - n, "[%s] ", component ? component : "core");
	n += w > 0 ? (size_t)w : 0;
	if (tenant > 0 && n < sizeof line) {
		w = snprintf(line + n, sizeof line - n, "tenant=%lld ", (long long)tenant);
		n += w > 0 ? (size_t)w : 0;
	}
	if (pile && *pile && n < sizeof line) {
		w = snprintf(line + n, sizeof line - n, "pile=%s ", pile);
		n += w > 0 ? (size_t)w : 0;
	}
	if (n < sizeof line) {
		w = vsnprintf(line + n, sizeof line - n, fmt, ap);
		n += w > 0 ? (size_t)w : 0;
	}
	if (n >= sizeof line - 1)
		n = sizeof line - 2;
	/* one line per record: newlines inside a message would break grep */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (g_syslog) {
		line[n] = 0;
		syslog(level, "%s", line);
		return;
	}
	line[n++] = '\n';
	ssize_t r = write(STDERR_FILENO, line, n);
	(void)r;
}

void evcs_log(int level, const char *component, int64_t tenant, const char *pile,
	      const char *fmt, ...)
{
	if (level > g_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	evcs_logv(level, component, tenant, pile, fmt, ap);
	va_end(ap);
}
