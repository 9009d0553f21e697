/*
 * log.h: the core's logger. One line per call, greppable:
 *   2026-11-24T09:50:00.123Z info  [proto] tenant=3 pile=CP-0001 login accepted
 * Target is stderr (journald adds its own timestamp, so stderr lines keep ours for
 * plain terminals) or syslog. Thread-safe: a line is written with one write(2)
 * (stderr) or one syslog(3) call. Lines over EVCS_LOG_LINE_MAX are truncated.
 */
#ifndef EVCS_LOG_H
#define EVCS_LOG_H

#include <evcs/plugin.h>
#include <stdarg.h>
#include <stdint.h>

#define EVCS_LOG_LINE_MAX 2048

/* level: enum evcs_log_level; target: 0 stderr, 1 syslog */
void evcs_log_setup(int level, int to_syslog, const char *ident);
int evcs_log_level(void);
/* Parse "err|warning|notice|info|debug"; -1 if unknown. */
int evcs_log_parse_level(const char *s);
const char *evcs_log_level_name(int level);

void evcs_logv(int level, const char *component, int64_t tenant, const char *pile,
	       const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
void evcs_log(int level, const char *component, int64_t tenant, const char *pile,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define evcs_err(comp, ...) evcs_log(EVCS_LOG_ERR, comp, 0, NULL, __VA_ARGS__)
#define evcs_warn(comp, ...) evcs_log(EVCS_LOG_WARNING, comp, 0, NULL, __VA_ARGS__)
#define evcs_notice(comp, ...) evcs_log(EVCS_LOG_NOTICE, comp, 0, NULL, __VA_ARGS__)
#define evcs_info(comp, ...) evcs_log(EVCS_LOG_INFO, comp, 0, NULL, __VA_ARGS__)
#define evcs_debug(comp, ...) evcs_log(EVCS_LOG_DEBUG, comp, 0, NULL, __VA_ARGS__)

#endif
