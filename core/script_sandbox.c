/*
 * core/script_sandbox.c: one sandboxed lua_State (see scripts/README.md,
 * "Sandbox", and docs/lua-sandbox.md §C.3 for the reasoning).
 *
 * - The state is built by evcs_sbx_open() from a whitelist: base (without
 *   dofile, loadfile, require, print, warn, rawget, rawset), string (without
 *   dump), table, math, utf8, a tiny os (time, clock, date "*t"), and `evcs`.
 *   No io, os.execute/getenv/remove, package, debug or coroutine.
 * - Memory: the allocator counts bytes per state and refuses growth past
 *   mem_bytes, and any single block larger than max_string (+ header).
 * - CPU: a count hook every EVCS_SBX_HOOK_EVERY instructions checks the
 *   instruction budget and a monotonic deadline. C functions that could run
 *   long without Lua instructions (load, pattern matching, string.rep) charge
 *   the budget and check the deadline themselves; table.insert/remove/move are
 *   reimplemented in Lua so their loops are counted. A breach sets a sticky
 *   "killed" flag and re-arms the hook at count 1, and pcall/xpcall re-raise,
 *   so a script cannot swallow the kill. Memory errors are treated the same.
 * - No script may install __gc (finalisers run with hooks disabled in 5.4);
 *   setmetatable refuses such metatables. tostring/string.format never print
 *   addresses. The string metatable and the `evcs` table are read-only.
 *
 * Single-threaded per state; the struct evcs_sbx outlives its lua_State.
 */
#include "script_sandbox.h"
#include "bus.h"

#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SBX(L) (*(struct evcs_sbx **)lua_getextraspace(L))

/* ---- allocator ----------------------------------------------------------- */
static void *sbx_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct evcs_sbx *x = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		free(ptr);
		x->used -= old;
		return NULL;
	}
	/* only growth is refused: Lua copes with a failed shrink, but refusing
	 * one would surface as an error at an odd point inside the GC */
	if (nsize > old) {
		if (nsize > x->max_block) {
			snprintf(x->kill_msg, sizeof(x->kill_msg),
				 "allocation of %zu bytes exceeds the max_string limit (%zu)", nsize,
				 x->lim.max_string);
			return NULL;
		}
		if (x->used - old + nsize > x->lim.mem_bytes) {
			snprintf(x->kill_msg, sizeof(x->kill_msg), "memory limit (%zu bytes) exceeded",
				 x->lim.mem_bytes);
			return NULL;
		}
	}
	void *p = realloc(ptr, nsize);
	if (!p)
		return NULL;
	x->used = x->used - old + nsize;
	if (x->used > x->peak)
		x->peak = x->used;
	return p;
}

/* ---- CPU budget ----------------------------------------------------------- */
static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sbx_hook(lua_State *L, lua_Debug *ar);

static int sbx_kill(lua_State *L, struct evcs_sbx *x, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int sbx_kill(lua_State *L, struct evcs_sbx *x, const char *fmt, ...)
{
	if (!x->killed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(x->kill_msg, sizeof(x->kill_msg), fmt, ap);
		va_end(ap);
		x->killed = 1;
	}
	/* from now on every single instruction raises again, in any pcall */
	lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
	lua_pushstring(L, x->kill_msg);
	return lua_error(L);
}

static void sbx_check(lua_State *L, struct evcs_sbx *x)
{
	if (!x->armed)
		return;
	if (x->killed)
		sbx_kill(L, x, "%s", x->kill_msg);
	if (x->instr > x->lim.instructions)
		sbx_kill(L, x, "instruction limit (%" PRIu64 ") exceeded", x->lim.instructions);
	if (now_ns() > x->deadline_ns)
		sbx_kill(L, x, "time limit (%u ms) exceeded", x->lim.wall_ms);
}

static void sbx_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	struct evcs_sbx *x = SBX(L);
	x->instr += EVCS_SBX_HOOK_EVERY;
	sbx_check(L, x);
}

/* C functions that do work proportional to their input charge it here */
static void sbx_charge(lua_State *L, uint64_t units)
{
	struct evcs_sbx *x = SBX(L);
	x->instr += units;
	sbx_check(L, x);
}

/* ---- safe replacements for base functions --------------------------------- */
static int is_ref_type(int t)
{
	return t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD ||
	       t == LUA_TLIGHTUSERDATA;
}

/* tostring that never shows an address (an ASLR leak) */
static void safe_tostring(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	int t = lua_type(L, idx);
	if (is_ref_type(t)) {
		if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
			lua_pop(L, 1);
			luaL_tolstring(L, idx, NULL);
		} else {
			lua_pushstring(L, lua_typename(L, t));
		}
		return;
	}
	luaL_tolstring(L, idx, NULL);
}

static int l_tostring(lua_State *L)
{
	luaL_checkany(L, 1);
	safe_tostring(L, 1);
	return 1;
}

static int l_pcall(lua_State *L)
{
	luaL_checkany(L, 1);
	struct evcs_sbx *x = SBX(L);
	int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
	if (st == LUA_ERRMEM && !x->killed) {
		x->killed = 1;
		if (!x->kill_msg[0])
			snprintf(x->kill_msg, sizeof(x->kill_msg), "not enough memory");
	}
	if (x->killed)
		return sbx_kill(L, x, "%s", x->kill_msg);
	lua_pushboolean(L, st == LUA_OK);
	lua_insert(L, 1);
	return lua_gettop(L);
}

static int l_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	struct evcs_sbx *x = SBX(L);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_replace(L, 1); /* 1 = handler */
	lua_replace(L, 2); /* 2 = function */
	int st = lua_pcall(L, n - 2, LUA_MULTRET, 1);
	if (st == LUA_ERRMEM && !x->killed) {
		x->killed = 1;
		if (!x->kill_msg[0])
			snprintf(x->kill_msg, sizeof(x->kill_msg), "not enough memory");
	}
	if (x->killed)
		return sbx_kill(L, x, "%s", x->kill_msg);
	lua_pushboolean(L, st == LUA_OK);
	lua_replace(L, 1);
	return lua_gettop(L);
}

static int l_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* load: text chunks from strings only, never bytecode */
static int l_load(lua_State *L)
{
	struct evcs_sbx *x = SBX(L);
	size_t len;
	const char *s = lua_tolstring(L, 1, &len);
	if (!s || lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: only source strings are allowed");
	const char *name = luaL_optstring(L, 2, "=(load)");
	const char *mode = luaL_optstring(L, 3, "t");
	if (strcmp(mode, "t") != 0)
		return luaL_error(L, "load: binary chunks are not allowed (mode must be \"t\")");
	if (len > x->lim.max_source)
		return luaL_error(L, "load: chunk larger than %I bytes", (lua_Integer)x->lim.max_source);
	sbx_charge(L, len);
	int has_env = !lua_isnone(L, 4);
	if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (has_env) {
		lua_pushvalue(L, 4);
		if (!lua_setupvalue(L, -2, 1))
			lua_pop(L, 1);
	}
	return 1;
}

static int l_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	if (strcmp(opt, "count") != 0)
		return luaL_error(L, "collectgarbage: only \"count\" is allowed");
	lua_pushnumber(L, (lua_Number)SBX(L)->used / 1024.0);
	return 1;
}

static int l_log(lua_State *L)
{
	struct evcs_sbx *x = SBX(L);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, ' ');
		safe_tostring(L, i);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	if (x->nlog >= x->lim.max_log)
		return 0;
	x->nlog++;
	size_t len;
	const char *m = lua_tolstring(L, -1, &len);
	char line[512];
	snprintf(line, sizeof(line), "%.*s", (int)(len < 500 ? len : 500), m);
	if (x->log)
		x->log(x, EVCS_LOG_INFO, line);
	return 0;
}

/* ---- string library guards -------------------------------------------------- */
static int l_rep(lua_State *L)
{
	size_t l, lsep;
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	struct evcs_sbx *x = SBX(L);
	/* an empty result would otherwise loop n times in C with no hook */
	if (n <= 0 || l + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	unsigned __int128 total = (unsigned __int128)(l + lsep) * (uint64_t)n;
	if (total > x->lim.max_string)
		return luaL_error(L, "string.rep: result would exceed max_string (%I bytes)",
				  (lua_Integer)x->lim.max_string);
	sbx_charge(L, (uint64_t)total / 16);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* Worst-case backtracking of a Lua pattern grows like len^(q+1), q being the
 * number of repetition items, %b and back-references. Refuse patterns whose
 * bound exceeds EVCS_SBX_PATTERN_COST, and charge the subject length. */
static int pattern_items(const char *p, size_t pl)
{
	int q = 0;
	for (size_t i = 0; i < pl; i++) {
		char c = p[i];
		if (c == '%') {
			if (i + 1 >= pl)
				break;
			char d = p[i + 1];
			if (d == 'b') {
				q++;
				i += 3;
			} else if (d >= '0' && d <= '9') {
				q++;
				i++;
			} else {
				i++;
			}
		} else if (c == '[') {
			i++;
			if (i < pl && p[i] == '^')
				i++;
			/* first ']' is literal */
			do {
				if (i < pl && p[i] == '%')
					i++;
				i++;
			} while (i < pl && p[i] != ']');
		} else if (c == '*' || c == '+' || c == '-' || c == '?') {
			q++;
		}
	}
	return q;
}

static void pattern_guard(lua_State *L, int subj, int pat)
{
	size_t n, pl;
	luaL_checklstring(L, subj, &n);
	const char *p = luaL_checklstring(L, pat, &pl);
	int q = pattern_items(p, pl);
	uint64_t cost = 1;
	for (int k = 0; k <= q; k++) {
		if (cost > EVCS_SBX_PATTERN_COST / (n + 1)) {
			luaL_error(L,
				   "pattern too expensive for a %I-byte subject (%d repetition items); "
				   "use a shorter subject or a simpler pattern",
				   (lua_Integer)n, q);
			return;
		}
		cost *= n + 1;
	}
	sbx_charge(L, n / 4 + 1);
}

static int call_up(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static int l_find(lua_State *L)
{
	if (!lua_toboolean(L, 4))
		pattern_guard(L, 1, 2);
	else
		sbx_charge(L, luaL_len(L, 1) / 4 + 1);
	return call_up(L);
}

static int l_match_like(lua_State *L)
{
	pattern_guard(L, 1, 2);
	return call_up(L);
}

static int l_format(lua_State *L)
{
	size_t fl;
	const char *f = luaL_checklstring(L, 1, &fl);
	for (size_t i = 0; i < fl; i++) {
		if (f[i] != '%')
			continue;
		i++;
		if (i < fl && f[i] == '%')
			continue;
		while (i < fl && strchr("-+ #0123456789.", f[i]))
			i++;
		if (i < fl && f[i] == 'p')
			return luaL_error(L, "string.format: %%p is not allowed");
	}
	int n = lua_gettop(L);
	for (int i = 2; i <= n; i++) {
		if (is_ref_type(lua_type(L, i))) {
			safe_tostring(L, i);
			lua_replace(L, i);
		}
	}
	return call_up(L);
}

/* ---- os ----------------------------------------------------------------------- */
static void push_tm(lua_State *L, const struct tm *tm, int iso_wday)
{
	lua_createtable(L, 0, 9);
	lua_pushinteger(L, tm->tm_year + 1900);
	lua_setfield(L, -2, "year");
	lua_pushinteger(L, tm->tm_mon + 1);
	lua_setfield(L, -2, "month");
	lua_pushinteger(L, tm->tm_mday);
	lua_setfield(L, -2, "day");
	lua_pushinteger(L, tm->tm_hour);
	lua_setfield(L, -2, "hour");
	lua_pushinteger(L, tm->tm_min);
	lua_setfield(L, -2, "min");
	lua_pushinteger(L, tm->tm_sec);
	lua_setfield(L, -2, "sec");
	lua_pushinteger(L, iso_wday ? (tm->tm_wday == 0 ? 7 : tm->tm_wday) : tm->tm_wday + 1);
	lua_setfield(L, -2, "wday");
	lua_pushinteger(L, tm->tm_yday + 1);
	lua_setfield(L, -2, "yday");
}

static int check_int(lua_State *L, int i, const char *what)
{
	if (!lua_isinteger(L, i)) {
		if (lua_type(L, i) == LUA_TNUMBER)
			return luaL_error(L,
					  "%s: got a float; money and energy must be integers "
					  "(0.00001 yuan, 0.0001 kWh): use evcs.yuan/evcs.mul_div",
					  what);
		return luaL_error(L, "%s: integer expected, got %s", what, luaL_typename(L, i));
	}
	return 0;
}

static int l_os_time(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushinteger(L, (lua_Integer)time(NULL));
		return 1;
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	static const char *const k[] = {"year", "month", "day", "hour", "min", "sec"};
	lua_Integer v[6] = {0, 0, 0, 12, 0, 0};
	for (int i = 0; i < 6; i++) {
		int t = lua_getfield(L, 1, k[i]);
		if (t == LUA_TNIL && i < 3)
			return luaL_error(L, "os.time: field '%s' missing", k[i]);
		if (t != LUA_TNIL) {
			if (!lua_isinteger(L, -1))
				return luaL_error(L, "os.time: field '%s' is not an integer", k[i]);
			v[i] = lua_tointeger(L, -1);
		}
		lua_pop(L, 1);
	}
	if (v[0] < 1900 || v[0] > 9999 || v[1] < -1000 || v[1] > 1000 || v[2] < -100000 ||
	    v[2] > 100000 || v[3] < -100000 || v[3] > 100000 || v[4] < -1000000 ||
	    v[4] > 1000000 || v[5] < -100000000 || v[5] > 100000000)
		return luaL_error(L, "os.time: field out of range");
	tm.tm_year = (int)v[0] - 1900;
	tm.tm_mon = (int)v[1] - 1;
	tm.tm_mday = (int)v[2];
	tm.tm_hour = (int)v[3];
	tm.tm_min = (int)v[4];
	tm.tm_sec = (int)v[5];
	/* the fields are local wall-clock time in the call's zone (normalised by timegm) */
	lua_pushinteger(L, (lua_Integer)evcs_tz_local_to_utc(SBX(L)->tz, (int64_t)timegm(&tm)));
	return 1;
}

static int l_os_date(lua_State *L)
{
	const char *f = luaL_optstring(L, 1, "*t");
	lua_Integer t = lua_isnoneornil(L, 2) ? (lua_Integer)time(NULL) : luaL_checkinteger(L, 2);
	int utc = 0;
	if (!strcmp(f, "!*t"))
		utc = 1;
	else if (strcmp(f, "*t") != 0)
		return luaL_error(L, "os.date: only \"*t\" and \"!*t\" are supported");
	if (t < -(1LL << 40) || t > (1LL << 40))
		return luaL_error(L, "os.date: time out of range");
	const evcs_tz_t *z = SBX(L)->tz;
	time_t tt = (time_t)(t + (utc ? 0 : evcs_tz_offset_at(z, t)));
	struct tm tm;
	if (!gmtime_r(&tt, &tm))
		return luaL_error(L, "os.date: time out of range");
	push_tm(L, &tm, 0);
	lua_pushboolean(L, !utc && evcs_tz_is_dst_at(z, t));
	lua_setfield(L, -2, "isdst");
	return 1;
}

static int l_os_clock(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)clock() / (lua_Number)CLOCKS_PER_SEC);
	return 1;
}

/* ---- evcs.* money helpers ------------------------------------------------------ */
static int decimal_arg(lua_State *L, int scale, const char *fn)
{
	if (lua_isinteger(L, 1)) {
		lua_settop(L, 1);
		return 1;
	}
	if (lua_type(L, 1) != LUA_TSTRING)
		return check_int(L, 1, fn);
	int64_t v;
	const char *s = lua_tostring(L, 1);
	if (evcs_decimal_parse(s, scale, &v) != 0)
		return luaL_error(L, "%s(\"%s\"): not a decimal with at most %d fractional digits", fn,
				  s, scale);
	lua_pushinteger(L, v);
	return 1;
}

static int l_yuan(lua_State *L)
{
	return decimal_arg(L, 5, "evcs.yuan");
}

static int l_kwh(lua_State *L)
{
	return decimal_arg(L, 4, "evcs.kwh");
}

static int l_mul_div(lua_State *L)
{
	check_int(L, 1, "evcs.mul_div argument #1");
	check_int(L, 2, "evcs.mul_div argument #2");
	check_int(L, 3, "evcs.mul_div argument #3");
	int64_t r;
	if (evcs_mul_div(lua_tointeger(L, 1), lua_tointeger(L, 2), lua_tointeger(L, 3), &r) != 0)
		return luaL_error(L, "evcs.mul_div: divisor must be > 0 and the result fit 64 bits");
	lua_pushinteger(L, r);
	return 1;
}

static int fmt_scaled(lua_State *L, int scale, const char *fn)
{
	check_int(L, 1, fn);
	char buf[40];
	lua_pushstring(L, evcs_decimal_format(lua_tointeger(L, 1), scale, buf, sizeof(buf)));
	return 1;
}

static int l_fmt_yuan(lua_State *L)
{
	return fmt_scaled(L, 5, "evcs.fmt_yuan");
}

static int l_fmt_kwh(lua_State *L)
{
	return fmt_scaled(L, 4, "evcs.fmt_kwh");
}

static int l_date(lua_State *L)
{
	lua_Integer t = lua_isnoneornil(L, 1) ? (lua_Integer)time(NULL) : luaL_checkinteger(L, 1);
	if (t < -(1LL << 40) || t > (1LL << 40))
		return luaL_error(L, "evcs.date: time out of range");
	/* an explicit offset (minutes) overrides the zone of the call */
	lua_Integer off = lua_isnoneornil(L, 2) ? evcs_tz_offset_at(SBX(L)->tz, t) / 60
						: luaL_checkinteger(L, 2);
	if (off < -900 || off > 900)
		return luaL_error(L, "evcs.date: offset must be minutes in -900..900");
	time_t tt = (time_t)(t + off * 60);
	struct tm tm;
	if (!gmtime_r(&tt, &tm))
		return luaL_error(L, "evcs.date: time out of range");
	push_tm(L, &tm, 1);
	lua_pushinteger(L, (tm.tm_hour * 60 + tm.tm_min) / 30 + 1);
	lua_setfield(L, -2, "slot");
	char d[48];
	snprintf(d, sizeof(d), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	lua_pushstring(L, d);
	lua_setfield(L, -2, "date");
	lua_pushinteger(L, off);
	lua_setfield(L, -2, "utc_offset_min");
	return 1;
}

static int l_time(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)time(NULL));
	return 1;
}

/* ---- events and alarms ----------------------------------------------------------- */
const char *evcs_script_event_name(uint32_t type)
{
	if (type == EVCS_SCRIPT_EV_TICK)
		return "tick";
	/* one table of names for the bus, logs and scripts: bus.c's */
	if (type > EVCS_EV_NONE && type < EVCS_EV__COUNT)
		return evcs_event_name(type);
	return NULL;
}

int evcs_sbx_event_type(const char *name)
{
	for (uint32_t t = 1; t < 64; t++) {
		const char *n = evcs_script_event_name(t);
		if (n && !strcmp(n, name))
			return (int)t;
	}
	return -1;
}

static int l_on(lua_State *L)
{
	struct evcs_sbx *x = SBX(L);
	const char *name = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (x->phase != EVCS_SBX_LOADING)
		return luaL_error(L, "evcs.on: handlers can only be registered while the script loads");
	int t = evcs_sbx_event_type(name);
	if (t < 0)
		return luaL_error(L, "evcs.on: unknown event '%s' (see scripts/README.md)", name);
	lua_getfield(L, LUA_REGISTRYINDEX, "evcs.handlers");
	if (lua_getfield(L, -1, name) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, name);
	}
	lua_pushvalue(L, 2);
	lua_seti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	x->handler_mask |= (uint64_t)1 << t;
	return 0;
}

static void op_free(struct evcs_sbx_op *o)
{
	free(o->code);
	free(o->msg);
	free(o->pile);
}

void evcs_sbx_ops_clear(struct evcs_sbx *x, size_t from)
{
	for (size_t i = from; i < x->nops; i++)
		op_free(&x->ops[i]);
	if (from < x->nops)
		x->nops = from;
}

static int alarm_op(lua_State *L, int raise)
{
	struct evcs_sbx *x = SBX(L);
	const char *fn = raise ? "evcs.raise_alarm" : "evcs.clear_alarm";
	if (!x->alarms_ok)
		return luaL_error(L, "%s: only allowed in event handlers (not for alarm events)", fn);
	size_t cl;
	const char *code = luaL_checklstring(L, 1, &cl);
	if (cl == 0 || cl > 48 || strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != cl)
		return luaL_error(L, "%s: code must match [A-Z0-9_]{1,48}", fn);
	int sev = 0, where = 2;
	const char *msg = "";
	if (raise) {
		const char *s = luaL_checkstring(L, 2);
		for (int i = 1; i <= 4; i++)
			if (!strcmp(s, evcs_alarm_severity_name(i)))
				sev = i;
		if (!sev)
			return luaL_error(L, "%s: severity must be info, warning, major or critical", fn);
		size_t ml;
		msg = luaL_checklstring(L, 3, &ml);
		if (ml > 256)
			return luaL_error(L, "%s: message longer than 256 bytes", fn);
		where = 4;
	}
	const char *pile = x->cur_pile;
	lua_Integer gun = x->cur_gun;
	if (!lua_isnoneornil(L, where)) {
		luaL_checktype(L, where, LUA_TTABLE);
		int t = lua_getfield(L, where, "pile");
		if (t == LUA_TSTRING)
			pile = lua_tostring(L, -1);
		else if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
			pile = NULL;
		else if (t != LUA_TNIL)
			return luaL_error(L, "%s: where.pile must be a string or false", fn);
		if (lua_getfield(L, where, "gun") != LUA_TNIL) {
			check_int(L, -1, "where.gun");
			gun = lua_tointeger(L, -1);
		}
	}
	if (x->nops >= x->lim.max_alarms)
		return luaL_error(L, "%s: more than %d alarm operations in one call", fn,
				  (int)x->lim.max_alarms);
	if (x->nops == x->capops) {
		size_t nc = x->capops ? x->capops * 2 : 8;
		struct evcs_sbx_op *no = realloc(x->ops, nc * sizeof(*no));
		if (!no)
			return luaL_error(L, "not enough memory");
		x->ops = no;
		x->capops = nc;
	}
	struct evcs_sbx_op *o = &x->ops[x->nops];
	memset(o, 0, sizeof(*o));
	o->raise = raise;
	o->severity = sev;
	o->gun = (int)gun;
	o->ts_ms = x->cur_ts;
	o->code = strdup(code);
	o->msg = strdup(msg);
	o->pile = pile ? strdup(pile) : NULL;
	if (!o->code || !o->msg || (pile && !o->pile)) {
		op_free(o);
		return luaL_error(L, "not enough memory");
	}
	x->nops++;
	return 0;
}

static int l_raise_alarm(lua_State *L)
{
	return alarm_op(L, 1);
}

static int l_clear_alarm(lua_State *L)
{
	return alarm_op(L, 0);
}

/* evcs.simulate(name, fields): self-tests only. Runs the script's handlers
 * for `name` with an event built from `fields` and returns the alarm
 * operations they issued: { {op="raise"|"clear", code, severity, message,
 * pile, gun}, ... }. */
static int l_simulate(lua_State *L)
{
	struct evcs_sbx *x = SBX(L);
	const char *name = luaL_checkstring(L, 1);
	if (x->phase != EVCS_SBX_TESTING)
		return luaL_error(L, "evcs.simulate: only available in self-tests");
	int type = evcs_sbx_event_type(name);
	if (type < 0)
		return luaL_error(L, "evcs.simulate: unknown event '%s'", name);
	lua_settop(L, 2);
	lua_newtable(L); /* 3: the event */
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, 2)) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_settable(L, 3);
		}
	}
	lua_pushstring(L, name);
	lua_setfield(L, 3, "type");
	if (lua_getfield(L, 3, "ts_ms") == LUA_TNIL) {
		lua_pushinteger(L, (lua_Integer)time(NULL) * 1000);
		lua_setfield(L, 3, "ts_ms");
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 3, "gun") == LUA_TNIL) {
		lua_pushinteger(L, 0);
		lua_setfield(L, 3, "gun");
	}
	lua_pop(L, 1);
	lua_pushinteger(L, x->tenant);
	lua_setfield(L, 3, "tenant");

	const char *save_pile = x->cur_pile;
	int save_gun = x->cur_gun, save_ok = x->alarms_ok;
	int64_t save_ts = x->cur_ts;
	lua_getfield(L, 3, "pile");
	x->cur_pile = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL; /* 4 anchors it */
	lua_getfield(L, 3, "gun");
	x->cur_gun = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, 3, "ts_ms");
	x->cur_ts = lua_tointeger(L, -1);
	lua_pop(L, 1);
	x->alarms_ok = type != EVCS_EV_ALARM_RAISED && type != EVCS_EV_ALARM_CLEARED;
	size_t mark = x->nops;

	lua_getfield(L, LUA_REGISTRYINDEX, "evcs.handlers");
	lua_getfield(L, -1, name); /* 6 */
	lua_Integer nh = lua_type(L, -1) == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, -1) : 0;
	for (lua_Integer i = 1; i <= nh; i++) {
		lua_rawgeti(L, 6, i);
		lua_pushvalue(L, 3);
		lua_call(L, 1, 0);
	}
	x->cur_pile = save_pile;
	x->cur_gun = save_gun;
	x->cur_ts = save_ts;
	x->alarms_ok = save_ok;

	lua_createtable(L, (int)(x->nops - mark), 0);
	for (size_t i = mark; i < x->nops; i++) {
		struct evcs_sbx_op *o = &x->ops[i];
		lua_createtable(L, 0, 6);
		lua_pushstring(L, o->raise ? "raise" : "clear");
		lua_setfield(L, -2, "op");
		lua_pushstring(L, o->code);
		lua_setfield(L, -2, "code");
		if (o->raise) {
			lua_pushstring(L, evcs_alarm_severity_name(o->severity));
			lua_setfield(L, -2, "severity");
			lua_pushstring(L, o->msg);
			lua_setfield(L, -2, "message");
		}
		if (o->pile) {
			lua_pushstring(L, o->pile);
			lua_setfield(L, -2, "pile");
		}
		lua_pushinteger(L, o->gun);
		lua_setfield(L, -2, "gun");
		lua_seti(L, -2, (lua_Integer)(i - mark + 1));
	}
	evcs_sbx_ops_clear(x, mark);
	return 1;
}

static int l_readonly(lua_State *L)
{
	return luaL_error(L, "the evcs table is read-only");
}

/* Lua half of the library: runs once per state, before tenant code, with
 * the raw evcs table as its argument. table.insert/remove/move live here so
 * their loops are counted by the instruction hook. */
static const char prelude[] =
    "local evcs, tbl = ...\n"
    "local mul_div, mtype, error, fmt = evcs.mul_div, math.type, error, string.format\n"
    "evcs.PERIODS = { 'sharp', 'peak', 'flat', 'valley' }\n"
    "evcs.SHARP, evcs.PEAK, evcs.FLAT, evcs.VALLEY = 0, 1, 2, 3\n"
    "local INDEX = { sharp = 0, peak = 1, flat = 2, valley = 3 }\n"
    "function evcs.period_index(name)\n"
    "  local p = INDEX[name]\n"
    "  if p == nil then error(fmt('unknown period %q (sharp, peak, flat, valley)', tostring(name)), 2) end\n"
    "  return p\n"
    "end\n"
    "function evcs.period_name(p)\n"
    "  if mtype(p) ~= 'integer' or p < 0 or p > 3 then error('period must be 0..3', 2) end\n"
    "  return evcs.PERIODS[p + 1]\n"
    "end\n"
    "local function hh(s)\n"
    "  local h, m = string.match(s, '^(%d%d):(%d%d)$')\n"
    "  h, m = tonumber(h), tonumber(m)\n"
    "  if not h or (m ~= 0 and m ~= 30) or h > 24 or (h == 24 and m ~= 0) then\n"
    "    error(fmt('bad time %q: use HH:MM on a half hour, 00:00..24:00', tostring(s)), 3)\n"
    "  end\n"
    "  return h * 2 + m // 30\n"
    "end\n"
    "function evcs.slots(ranges)\n"
    "  local slots = {}\n"
    "  for _, r in ipairs(ranges) do\n"
    "    local a, b, p = hh(r[1]), hh(r[2]), evcs.period_index(r[3])\n"
    "    if a == 48 then a = 0 end\n"
    "    local i = a\n"
    "    repeat\n"
    "      if slots[i + 1] ~= nil then error(fmt('slot %02d:%02d covered twice', i // 2, i % 2 * 30), 2) end\n"
    "      slots[i + 1] = p\n"
    "      i = (i + 1) % 48\n"
    "    until i == b % 48\n"
    "  end\n"
    "  for i = 1, 48 do\n"
    "    if slots[i] == nil then error(fmt('slot %02d:%02d not covered', (i - 1) // 2, (i - 1) % 2 * 30), 2) end\n"
    "  end\n"
    "  return slots\n"
    "end\n"
    "function evcs.line(kind, period, label, qty, unit_price, unit)\n"
    "  return { kind = kind, period = period, label = label, unit = unit or 'kWh', qty = qty,\n"
    "           unit_price = unit_price, amount = mul_div(qty, unit_price, 10000) }\n"
    "end\n"
    "function evcs.standard_items(s, t, kwh)\n"
    "  t, kwh = t or s.tariff, kwh or s.kwh\n"
    "  local items = {}\n"
    "  for p = 0, 3 do\n"
    "    local name = evcs.PERIODS[p + 1]\n"
    "    local q, r = kwh[name] or 0, t.rates[name]\n"
    "    if q > 0 then\n"
    "      items[#items + 1] = evcs.line('energy', p, name .. ' electricity', q, r.elec)\n"
    "      items[#items + 1] = evcs.line('service', p, name .. ' service', q, r.service)\n"
    "    end\n"
    "  end\n"
    "  return items\n"
    "end\n"
    "function evcs.kwh_by_period(s, classify)\n"
    "  local out = { sharp = 0, peak = 0, flat = 0, valley = 0 }\n"
    "  if #s.pieces == 0 then\n"
    "    for k, v in pairs(s.kwh) do out[k] = v end\n"
    "    return out\n"
    "  end\n"
    "  for _, pc in ipairs(s.pieces) do\n"
    "    local p = classify and classify(pc) or pc.period\n"
    "    local name = evcs.PERIODS[p + 1]\n"
    "    out[name] = out[name] + pc.kwh\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "function evcs.sum(items)\n"
    "  local t = 0\n"
    "  for _, it in ipairs(items) do t = t + it.amount end\n"
    "  return t\n"
    "end\n"
    "function evcs.expect_eq(got, want, what)\n"
    "  if got ~= want then\n"
    "    error(fmt('%s: got %s, want %s', what or 'value', tostring(got), tostring(want)), 2)\n"
    "  end\n"
    "end\n"
    "local function int(v, n, f)\n"
    "  if mtype(v) ~= 'integer' then error(fmt(\"bad argument #%d to '%s' (integer expected)\", n, f), 3) end\n"
    "end\n"
    "function tbl.insert(t, ...)\n"
    "  local n, e = select('#', ...), #t + 1\n"
    "  if n == 1 then t[e] = ...; return end\n"
    "  if n ~= 2 then error(\"wrong number of arguments to 'insert'\", 2) end\n"
    "  local pos, v = ...\n"
    "  int(pos, 2, 'insert')\n"
    "  if pos < 1 or pos > e then error(\"bad argument #2 to 'insert' (position out of bounds)\", 2) end\n"
    "  for i = e, pos + 1, -1 do t[i] = t[i - 1] end\n"
    "  t[pos] = v\n"
    "end\n"
    "function tbl.remove(t, pos)\n"
    "  local size = #t\n"
    "  if pos == nil then pos = size else int(pos, 2, 'remove') end\n"
    "  if pos ~= size and (pos < 1 or pos > size + 1) then\n"
    "    error(\"bad argument #2 to 'remove' (position out of bounds)\", 2)\n"
    "  end\n"
    "  local v = t[pos]\n"
    "  while pos < size do t[pos] = t[pos + 1]; pos = pos + 1 end\n"
    "  if pos <= size or size == 0 then t[pos] = nil end\n"
    "  return v\n"
    "end\n"
    "function tbl.move(a1, f, e, t, a2)\n"
    "  if a2 == nil then a2 = a1 end\n"
    "  int(f, 2, 'move'); int(e, 3, 'move'); int(t, 4, 'move')\n"
    "  if e >= f then\n"
    "    if t > e or t <= f or a1 ~= a2 then\n"
    "      for i = 0, e - f do a2[t + i] = a1[f + i] end\n"
    "    else\n"
    "      for i = e - f, 0, -1 do a2[t + i] = a1[f + i] end\n"
    "    end\n"
    "  end\n"
    "  return a2\n"
    "end\n";

/* ---- state construction ------------------------------------------------------------ */
static void del_field(lua_State *L, int t, const char *k)
{
	lua_pushnil(L);
	lua_setfield(L, t, k);
}

static void wrap_field(lua_State *L, int t, const char *k, lua_CFunction f)
{
	lua_getfield(L, t, k);
	lua_pushcclosure(L, f, 1);
	lua_setfield(L, t, k);
}

static int sbx_setup(lua_State *L)
{
	struct evcs_sbx *x = SBX(L);
	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
	luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
	luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
	luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
	lua_settop(L, 0);
	/* package.loaded keeps references to the libraries; scripts cannot reach it */
	lua_pushglobaltable(L); /* 1 */
	static const char *const drop[] = {"dofile", "loadfile", "require", "warn", "rawget", "rawset",
					   "print", "collectgarbage", "load", NULL};
	for (int i = 0; drop[i]; i++)
		del_field(L, 1, drop[i]);
	lua_pushcfunction(L, l_tostring);
	lua_setfield(L, 1, "tostring");
	lua_pushcfunction(L, l_pcall);
	lua_setfield(L, 1, "pcall");
	lua_pushcfunction(L, l_xpcall);
	lua_setfield(L, 1, "xpcall");
	lua_pushcfunction(L, l_load);
	lua_setfield(L, 1, "load");
	lua_pushcfunction(L, l_collectgarbage);
	lua_setfield(L, 1, "collectgarbage");
	lua_pushcfunction(L, l_log);
	lua_setfield(L, 1, "print");
	wrap_field(L, 1, "setmetatable", l_setmetatable);

	lua_getglobal(L, "string"); /* 2 */
	del_field(L, 2, "dump");
	wrap_field(L, 2, "rep", l_rep);
	wrap_field(L, 2, "find", l_find);
	wrap_field(L, 2, "match", l_match_like);
	wrap_field(L, 2, "gmatch", l_match_like);
	wrap_field(L, 2, "gsub", l_match_like);
	wrap_field(L, 2, "format", l_format);
	/* getmetatable("") gives false, and the metatable cannot be replaced */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);

	lua_createtable(L, 0, 3); /* os */
	lua_pushcfunction(L, l_os_time);
	lua_setfield(L, -2, "time");
	lua_pushcfunction(L, l_os_date);
	lua_setfield(L, -2, "date");
	lua_pushcfunction(L, l_os_clock);
	lua_setfield(L, -2, "clock");
	lua_setglobal(L, "os");

	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "evcs.handlers");

	static const luaL_Reg fns[] = {
	    {"yuan", l_yuan},
	    {"kwh", l_kwh},
	    {"mul_div", l_mul_div},
	    {"fmt_yuan", l_fmt_yuan},
	    {"fmt_kwh", l_fmt_kwh},
	    {"date", l_date},
	    {"time", l_time},
	    {"on", l_on},
	    {"raise_alarm", l_raise_alarm},
	    {"clear_alarm", l_clear_alarm},
	    {"simulate", l_simulate},
	    {"log", l_log},
	    {NULL, NULL},
	};
	luaL_newlib(L, fns); /* 3: the real evcs table */
	lua_pushinteger(L, x->tenant);
	lua_setfield(L, 3, "tenant");
	lua_pushstring(L, x->slot);
	lua_setfield(L, 3, "slot");
	if (luaL_loadbufferx(L, prelude, sizeof(prelude) - 1, "=evcs", "t") != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, 3);
	lua_getglobal(L, "table");
	lua_call(L, 2, 0);

	/* global evcs = read-only proxy */
	lua_newtable(L);
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, 3);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, l_readonly);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_setglobal(L, "evcs");
	return 0;
}

lua_State *evcs_sbx_open(struct evcs_sbx *x, char *msg, size_t msglen)
{
	x->used = 0;
	x->max_block = x->lim.max_string + 64;
	lua_State *L = lua_newstate(sbx_alloc, x);
	if (!L) {
		snprintf(msg, msglen, "cannot create a Lua state (memory limit %zu)", x->lim.mem_bytes);
		return NULL;
	}
	SBX(L) = x;
	lua_sethook(L, sbx_hook, LUA_MASKCOUNT, EVCS_SBX_HOOK_EVERY);
	x->phase = EVCS_SBX_SETUP;
	lua_pushcfunction(L, sbx_setup);
	if (evcs_sbx_call(x, L, 0, 0, msg, msglen) != 0) {
		evcs_sbx_close(x, L);
		return NULL;
	}
	return L;
}

void evcs_sbx_close(struct evcs_sbx *x, lua_State *L)
{
	if (!L)
		return;
	/* keep the hook live: closing runs pending __close handlers */
	x->armed = 1;
	x->killed = 0;
	x->instr = 0;
	x->deadline_ns = now_ns() + (int64_t)x->lim.wall_ms * 1000000;
	lua_sethook(L, sbx_hook, LUA_MASKCOUNT, EVCS_SBX_HOOK_EVERY);
	lua_close(L);
	x->armed = 0;
	evcs_sbx_ops_clear(x, 0);
}

int evcs_sbx_call(struct evcs_sbx *x, lua_State *L, int nargs, int nres, char *msg, size_t msglen)
{
	x->armed = 1;
	x->killed = 0;
	x->kill_msg[0] = 0;
	x->instr = 0;
	x->nlog = 0;
	x->deadline_ns = now_ns() + (int64_t)x->lim.wall_ms * 1000000;
	lua_sethook(L, sbx_hook, LUA_MASKCOUNT, EVCS_SBX_HOOK_EVERY);
	int st = lua_pcall(L, nargs, nres, 0);
	x->armed = 0;
	if (st == LUA_OK)
		return 0;
	int limit = x->killed || st == LUA_ERRMEM;
	if (limit) {
		snprintf(msg, msglen, "%s", x->kill_msg[0] ? x->kill_msg : "not enough memory");
	} else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
		size_t len;
		const char *m = lua_tolstring(L, -1, &len);
		snprintf(msg, msglen, "%.*s", (int)(len > 1000 ? 1000 : len), m);
	} else {
		snprintf(msg, msglen, "(error object is a %s value)", luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	x->killed = 0;
	lua_sethook(L, sbx_hook, LUA_MASKCOUNT, EVCS_SBX_HOOK_EVERY);
	return limit ? 2 : 1;
}
