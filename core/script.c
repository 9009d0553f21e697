/*
 * core/script.c: the tenant script engine: per-tenant named scripts, load
 * with self-tests and rollback, tariff()/quote() calls with strict
 * validation of what scripts return, and alarm-event dispatch.
 *
 * Contract in core/script.h. Every Lua API call that may raise runs inside a
 * protected "trampoline" (tramp_*) under evcs_sbx_call(), so a script error,
 * a memory refusal or a budget kill never escapes as a Lua panic.
 */
#include "script.h"
#include "script_sandbox.h"

#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct slot {
	char name[40];
	lua_State *L;
	struct evcs_sbx *x;
	char *src;
	size_t len;
	char chunk[256];
	char sha[65];
	uint64_t mask;
	int busy;
};

struct tenant {
	int64_t id;
	struct slot **slots; /* sorted by name; pointers stable */
	size_t n;
};

struct evcs_script_engine {
	evcs_script_limits_t lim;
	struct tenant *t; /* sorted by id */
	size_t nt, capt;
	evcs_script_log_fn log;
	void *log_ud;
	evcs_script_tz_fn tz_fn;
	void *tz_ud;
	const evcs_tz_t *deftz; /* lim.tz, else Asia/Shanghai (a fixed +08:00 without tzdata) */
	evcs_script_stats_t st;
};

#define MSG 1200

void evcs_script_limits_default(evcs_script_limits_t *l)
{
	memset(l, 0, sizeof(*l));
	l->mem_bytes = 8u << 20;
	l->instructions = 2000000;
	l->wall_ms = 50;
	l->max_string = 1u << 20;
	l->max_source = 256u << 10;
	l->max_alarms = 64;
	l->max_log = 16;
	l->tz = NULL;
}

/* the zone a call for this tenant runs in */
static const evcs_tz_t *zone_for(evcs_script_engine_t *e, int64_t tenant)
{
	const evcs_tz_t *z = e->tz_fn ? e->tz_fn(tenant, e->tz_ud) : NULL;
	return z ? z : e->deftz;
}

static void set_err(char **err, int64_t tenant, const char *slot, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void set_err(char **err, int64_t tenant, const char *slot, const char *fmt, ...)
{
	if (!err)
		return;
	char body[MSG];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	char *m = NULL;
	if (asprintf(&m, "tenant %" PRId64 " script %s: %s", tenant, slot, body) < 0)
		m = NULL;
	if (*err) {
		/* keep the first error, append later ones */
		char *j = NULL;
		if (m && asprintf(&j, "%s; %s", *err, m) >= 0) {
			free(*err);
			*err = j;
		}
		free(m);
		return;
	}
	*err = m;
}

static void elog(evcs_script_engine_t *e, int64_t tenant, const char *slot, int level,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void elog(evcs_script_engine_t *e, int64_t tenant, const char *slot, int level,
		 const char *fmt, ...)
{
	if (!e->log)
		return;
	char body[MSG], line[MSG + 80];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "tenant %" PRId64 " script %s: %s", tenant, slot, body);
	e->log(tenant, slot, level, line, e->log_ud);
}

static void sbx_log_fwd(struct evcs_sbx *x, int level, const char *line)
{
	elog(x->owner, x->tenant, x->slot, level, "%s", line);
}

/* ---- tenants and slots ----------------------------------------------------------- */
static struct tenant *find_tenant(evcs_script_engine_t *e, int64_t id, size_t *pos)
{
	size_t lo = 0, hi = e->nt;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (e->t[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return lo < e->nt && e->t[lo].id == id ? &e->t[lo] : NULL;
}

static struct slot *find_slot(evcs_script_engine_t *e, int64_t tenant, const char *name)
{
	struct tenant *t = find_tenant(e, tenant, NULL);
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->slots[i]->name, name))
			return t->slots[i];
	return NULL;
}

static struct slot *add_slot(evcs_script_engine_t *e, int64_t tenant, const char *name)
{
	size_t pos;
	struct tenant *t = find_tenant(e, tenant, &pos);
	if (!t) {
		if (e->nt == e->capt) {
			size_t nc = e->capt ? e->capt * 2 : 8;
			struct tenant *nt = realloc(e->t, nc * sizeof(*nt));
			if (!nt)
				return NULL;
			e->t = nt;
			e->capt = nc;
		}
		memmove(&e->t[pos + 1], &e->t[pos], (e->nt - pos) * sizeof(*e->t));
		e->nt++;
		t = &e->t[pos];
		memset(t, 0, sizeof(*t));
		t->id = tenant;
	}
	struct slot **ns = realloc(t->slots, (t->n + 1) * sizeof(*ns));
	struct slot *s = calloc(1, sizeof(*s));
	if (ns)
		t->slots = ns;
	if (!ns || !s) {
		free(s);
		return NULL;
	}
	snprintf(s->name, sizeof(s->name), "%s", name);
	size_t i = t->n;
	while (i > 0 && strcmp(t->slots[i - 1]->name, name) > 0) {
		t->slots[i] = t->slots[i - 1];
		i--;
	}
	t->slots[i] = s;
	t->n++;
	return s;
}

static void free_state(struct evcs_sbx *x, lua_State *L)
{
	if (x) {
		evcs_sbx_close(x, L);
		free(x->ops);
		free(x);
	}
}

static void slot_free(struct slot *s)
{
	free_state(s->x, s->L);
	free(s->src);
	free(s);
}

/* ---- Lua <-> C conversions (run inside trampolines) -------------------------------- */
static int64_t field_int(lua_State *L, int t, const char *k, int required, int64_t def,
			 const char *ctx)
{
	int ty = lua_getfield(L, t, k);
	int64_t v = def;
	if (ty == LUA_TNIL) {
		if (required)
			luaL_error(L, "%s: field '%s' is missing", ctx, k);
	} else if (lua_isinteger(L, -1)) {
		v = lua_tointeger(L, -1);
	} else if (ty == LUA_TNUMBER) {
		luaL_error(L,
			   "%s: field '%s' is a float (%f); money and energy must be integers "
			   "(0.00001 yuan, 0.0001 kWh): use evcs.mul_div / evcs.yuan",
			   ctx, k, lua_tonumber(L, -1));
	} else {
		luaL_error(L, "%s: field '%s' must be an integer, got %s", ctx, k, luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return v;
}

static void model_from_lua(lua_State *L, int idx, evcs_tariff_model_t *m)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "tariff() must return a table {model=, rates=, slots=}");
	memset(m, 0, sizeof(*m));
	size_t ml;
	lua_getfield(L, idx, "model");
	const char *model = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &ml) : NULL;
	if (!model || ml != 4 || strspn(model, "0123456789") != 4)
		luaL_error(L, "tariff: model must be a string of 4 decimal digits");
	memcpy(m->model, model, 5);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "rates") != LUA_TTABLE)
		luaL_error(L, "tariff: rates must be a table {sharp=, peak=, flat=, valley=}");
	for (int p = 0; p < 4; p++) {
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "tariff rates.%s", evcs_period_name(p));
		if (lua_getfield(L, -1, evcs_period_name(p)) != LUA_TTABLE)
			luaL_error(L, "%s must be a table {elec=, service=}", ctx);
		m->elec[p] = field_int(L, -1, "elec", 1, 0, ctx);
		m->service[p] = field_int(L, -1, "service", 1, 0, ctx);
		if (m->elec[p] < 0 || m->elec[p] > UINT32_MAX || m->service[p] < 0 ||
		    m->service[p] > UINT32_MAX)
			luaL_error(L, "%s: rates must be in 0..4294967295 (0.00001 yuan/kWh)", ctx);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "slots") != LUA_TTABLE)
		luaL_error(L, "tariff: slots must be an array of 48 periods (0..3)");
	for (int i = 1; i <= EVCS_SLOTS; i++) {
		lua_geti(L, -1, i);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 3)
			luaL_error(L, "tariff: slots[%d] must be an integer 0..3", i);
		m->slots[i - 1] = (uint8_t)lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	if (lua_geti(L, -1, EVCS_SLOTS + 1) != LUA_TNIL)
		luaL_error(L, "tariff: slots has more than 48 entries");
	lua_pop(L, 2);
}

static void model_to_lua(lua_State *L, const evcs_tariff_model_t *m)
{
	lua_createtable(L, 0, 3);
	lua_pushstring(L, m->model);
	lua_setfield(L, -2, "model");
	lua_createtable(L, 0, 4);
	for (int p = 0; p < 4; p++) {
		lua_createtable(L, 0, 2);
		lua_pushinteger(L, m->elec[p]);
		lua_setfield(L, -2, "elec");
		lua_pushinteger(L, m->service[p]);
		lua_setfield(L, -2, "service");
		lua_setfield(L, -2, evcs_period_name(p));
	}
	lua_setfield(L, -2, "rates");
	lua_createtable(L, EVCS_SLOTS, 0);
	for (int i = 0; i < EVCS_SLOTS; i++) {
		lua_pushinteger(L, m->slots[i]);
		lua_seti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "slots");
}

static void set_str(lua_State *L, const char *k, const char *v)
{
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

static void set_int(lua_State *L, const char *k, int64_t v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

struct quote_call {
	const evcs_session_t *s;
	const evcs_tariff_model_t *m;
	const evcs_energy_piece_t *pieces;
	size_t npieces;
	const int64_t *pk;
	evcs_bill_t *bill;
	const evcs_tz_t *tz;
};

static void session_to_lua(lua_State *L, const struct quote_call *q)
{
	const evcs_session_t *s = q->s;
	lua_createtable(L, 0, 24);
	set_int(L, "tenant", s->tenant_id);
	set_str(L, "pile", s->pile);
	set_int(L, "gun", s->gun);
	set_str(L, "trade_no", s->trade_no);
	set_int(L, "start", s->start);
	set_int(L, "stop", s->stop);
	set_int(L, "duration_s", s->stop - s->start);
	set_int(L, "tz_offset_min", evcs_tz_offset_at(q->tz, s->start) / 60);
	set_str(L, "timezone", evcs_tz_name(q->tz));
	lua_createtable(L, 0, 4);
	int64_t total = 0;
	for (int p = 0; p < 4; p++) {
		set_int(L, evcs_period_name(p), q->pk[p]);
		total += q->pk[p];
	}
	lua_setfield(L, -2, "kwh");
	set_int(L, "total_kwh", total);
	lua_createtable(L, (int)q->npieces, 0);
	for (size_t i = 0; i < q->npieces; i++) {
		const evcs_energy_piece_t *pc = &q->pieces[i];
		char d[48];
		lua_createtable(L, 0, 11);
		set_int(L, "t0", pc->t0);
		set_int(L, "t1", pc->t1);
		set_int(L, "kwh", pc->kwh);
		set_int(L, "slot", pc->slot + 1);
		set_int(L, "period", pc->period);
		set_int(L, "year", pc->year);
		set_int(L, "month", pc->month);
		set_int(L, "day", pc->day);
		set_int(L, "wday", pc->wday);
		snprintf(d, sizeof(d), "%04d-%02d-%02d", pc->year, pc->month, pc->day);
		set_str(L, "date", d);
		lua_seti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "pieces");
	model_to_lua(L, q->m);
	lua_setfield(L, -2, "tariff");
	set_str(L, "driver_id", s->driver_id);
	set_str(L, "member", s->member);
	set_str(L, "fleet", s->fleet);
	lua_createtable(L, (int)s->ntags, 0);
	lua_createtable(L, 0, (int)s->ntags);
	for (size_t i = 0; i < s->ntags; i++) {
		if (!s->tags[i])
			continue;
		lua_pushstring(L, s->tags[i]);
		lua_seti(L, -3, (lua_Integer)i + 1);
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, s->tags[i]);
	}
	lua_setfield(L, -3, "tag_set");
	lua_setfield(L, -2, "tags");
	set_int(L, "idle_minutes", s->idle_minutes);
	set_int(L, "peak_power_w", s->peak_power_w);
	if (s->pile_amount >= 0)
		set_int(L, "pile_amount", s->pile_amount);
}

static const char *const kind_names[] = {"energy", "service", "fee", "discount", "adjust"};

static void bill_from_lua(lua_State *L, int idx, evcs_bill_t *b)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "quote() must return a table {items = {...}}");
	if (lua_getfield(L, idx, "items") != LUA_TTABLE)
		luaL_error(L, "quote(): bill.items must be an array of line items");
	int it = lua_gettop(L);
	lua_Unsigned n = lua_rawlen(L, it);
	if (n > EVCS_BILL_MAX_ITEMS)
		luaL_error(L, "quote(): %d line items at most", EVCS_BILL_MAX_ITEMS);
	b->nitems = 0;
	int64_t sum = 0;
	for (lua_Unsigned i = 1; i <= n; i++) {
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "bill item %u", (unsigned)i);
		if (lua_rawgeti(L, it, (lua_Integer)i) != LUA_TTABLE)
			luaL_error(L, "%s must be a table", ctx);
		int t = lua_gettop(L);
		evcs_bill_item_t *bi = &b->items[b->nitems];
		memset(bi, 0, sizeof(*bi));
		lua_getfield(L, t, "kind");
		const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
		for (int j = 0; j < 5; j++)
			if (!strcmp(k, kind_names[j]))
				bi->kind = j + 1;
		if (!bi->kind)
			luaL_error(L, "%s: kind must be energy, service, fee, discount or adjust", ctx);
		lua_pop(L, 1);
		int pt = lua_getfield(L, t, "period");
		bi->period = -1;
		if (pt == LUA_TSTRING) {
			for (int p = 0; p < 4; p++)
				if (!strcmp(lua_tostring(L, -1), evcs_period_name(p)))
					bi->period = p;
			if (bi->period < 0)
				luaL_error(L, "%s: unknown period", ctx);
		} else if (pt != LUA_TNIL) {
			if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < -1 || lua_tointeger(L, -1) > 3)
				luaL_error(L, "%s: period must be 0..3 or a period name", ctx);
			bi->period = (int)lua_tointeger(L, -1);
		}
		lua_pop(L, 1);
		size_t ll;
		int lt = lua_getfield(L, t, "label");
		const char *label = lt == LUA_TSTRING ? lua_tolstring(L, -1, &ll) : NULL;
		if (lt != LUA_TNIL && !label)
			luaL_error(L, "%s: label must be a string", ctx);
		if (label && ll >= sizeof(bi->label))
			luaL_error(L, "%s: label longer than %I bytes", ctx, (lua_Integer)sizeof(bi->label) - 1);
		snprintf(bi->label, sizeof(bi->label), "%s", label ? label : kind_names[bi->kind - 1]);
		lua_pop(L, 1);
		lt = lua_getfield(L, t, "unit");
		const char *unit = lt == LUA_TSTRING ? lua_tolstring(L, -1, &ll) : NULL;
		if (lt != LUA_TNIL && (!unit || ll >= sizeof(bi->unit)))
			luaL_error(L, "%s: unit must be a string of at most %I bytes", ctx,
				   (lua_Integer)sizeof(bi->unit) - 1);
		snprintf(bi->unit, sizeof(bi->unit), "%s", unit ? unit : "");
		lua_pop(L, 1);
		bi->qty = field_int(L, t, "qty", 0, 0, ctx);
		bi->unit_price = field_int(L, t, "unit_price", 0, 0, ctx);
		bi->amount = field_int(L, t, "amount", 1, 0, ctx);
		if ((bi->kind <= EVCS_ITEM_FEE && bi->amount < 0) ||
		    (bi->kind == EVCS_ITEM_DISCOUNT && bi->amount > 0))
			luaL_error(L, "%s: a %s amount must be %s", ctx, kind_names[bi->kind - 1],
				   bi->kind == EVCS_ITEM_DISCOUNT ? "<= 0" : ">= 0");
		if (__builtin_add_overflow(sum, bi->amount, &sum))
			luaL_error(L, "quote(): total overflows");
		b->nitems++;
		lua_settop(L, it);
	}
	lua_pop(L, 1);
	int tt = lua_getfield(L, idx, "total");
	if (tt != LUA_TNIL) {
		int64_t tot = field_int(L, idx, "total", 1, 0, "bill");
		if (tot != sum)
			luaL_error(L, "quote(): bill.total %I != sum of items %I", (lua_Integer)tot, (lua_Integer)sum);
	}
	lua_pop(L, 1);
	if (sum < 0)
		luaL_error(L, "quote(): bill total is negative (%I)", (lua_Integer)sum);
	b->total = sum;
}

/* ---- trampolines ------------------------------------------------------------------- */
static int tramp_list_tests(lua_State *L)
{
	lua_settop(L, 0);
	if (lua_getglobal(L, "tests") != LUA_TTABLE)
		return luaL_error(L, "no self-tests: define a table `tests` of named functions");
	lua_newtable(L); /* 2 */
	lua_Integer n = 0;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			return luaL_error(L, "tests: keys must be test names (strings)");
		if (lua_type(L, -1) != LUA_TFUNCTION)
			return luaL_error(L, "tests.%s is not a function", lua_tostring(L, -2));
		lua_pop(L, 1);
		if (++n > 500)
			return luaL_error(L, "tests: more than 500 tests");
		lua_pushvalue(L, -1);
		lua_seti(L, 2, n);
	}
	if (n == 0)
		return luaL_error(L, "no self-tests: the `tests` table is empty");
	for (lua_Integer i = 2; i <= n; i++) {
		for (lua_Integer j = i; j > 1; j--) {
			lua_geti(L, 2, j - 1);
			lua_geti(L, 2, j);
			if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) <= 0) {
				lua_pop(L, 2);
				break;
			}
			lua_seti(L, 2, j - 1);
			lua_seti(L, 2, j);
		}
	}
	lua_pushvalue(L, 2);
	lua_setfield(L, LUA_REGISTRYINDEX, "evcs.testnames");
	lua_pushinteger(L, n);
	return 1;
}

static int tramp_run_test(lua_State *L)
{
	char *name = lua_touserdata(L, 1);
	lua_Integer i = lua_tointeger(L, 2);
	lua_getfield(L, LUA_REGISTRYINDEX, "evcs.testnames");
	lua_geti(L, -1, i);
	snprintf(name, 64, "%s", lua_tostring(L, -1));
	lua_getglobal(L, "tests");
	if (lua_type(L, -1) != LUA_TTABLE || lua_getfield(L, -1, name) != LUA_TFUNCTION)
		return luaL_error(L, "tests.%s disappeared", name);
	lua_call(L, 0, 0);
	return 0;
}

struct inspect {
	int has_tariff, has_quote;
};

static int tramp_inspect(lua_State *L)
{
	struct inspect *r = lua_touserdata(L, 1);
	r->has_tariff = lua_getglobal(L, "tariff") == LUA_TFUNCTION;
	r->has_quote = lua_getglobal(L, "quote") == LUA_TFUNCTION;
	return 0;
}

struct tariff_call {
	const char *pile;
	evcs_tariff_model_t *out;
};

static int tramp_tariff(lua_State *L)
{
	struct tariff_call *c = lua_touserdata(L, 1);
	if (lua_getglobal(L, "tariff") != LUA_TFUNCTION)
		return luaL_error(L, "tariff() is not defined");
	if (c->pile)
		lua_pushstring(L, c->pile);
	else
		lua_pushnil(L);
	lua_call(L, 1, 1);
	model_from_lua(L, -1, c->out);
	return 0;
}

static int tramp_quote(lua_State *L)
{
	struct quote_call *q = lua_touserdata(L, 1);
	if (lua_getglobal(L, "quote") != LUA_TFUNCTION)
		return luaL_error(L, "quote() is not defined");
	session_to_lua(L, q);
	lua_call(L, 1, 1);
	bill_from_lua(L, -1, q->bill);
	return 0;
}

struct ev_call {
	const evcs_event_t *ev; /* NULL for tick */
	const char *name;
	int64_t ts_ms;
};

static int tramp_event(lua_State *L)
{
	struct ev_call *c = lua_touserdata(L, 1);
	const evcs_event_t *ev = c->ev;
	lua_createtable(L, 0, 8 + (ev ? (int)ev->nfields : 0)); /* 2 */
	if (ev) {
		for (size_t i = 0; i < ev->nfields; i++) {
			const evcs_field_t *f = &ev->fields[i];
			if (!f->name)
				continue;
			if (f->kind == EVCS_F_INT)
				lua_pushinteger(L, f->i);
			else if (f->kind == EVCS_F_BOOL)
				lua_pushboolean(L, f->i != 0);
			else if (f->kind == EVCS_F_STR && f->s)
				lua_pushstring(L, f->s);
			else
				continue;
			lua_setfield(L, 2, f->name);
		}
		set_str(L, "pile", ev->pile);
		set_int(L, "gun", ev->gun);
		set_str(L, "source", ev->source);
		set_int(L, "tenant", ev->tenant_id);
	}
	set_str(L, "type", c->name);
	set_int(L, "ts_ms", c->ts_ms);
	lua_getfield(L, LUA_REGISTRYINDEX, "evcs.handlers");
	lua_getfield(L, -1, c->name); /* 4 */
	lua_Integer n = lua_type(L, -1) == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, -1) : 0;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, 4, i);
		lua_pushvalue(L, 2);
		lua_call(L, 1, 0);
	}
	return 0;
}

/* ---- building a state ------------------------------------------------------------- */
static int build_state(evcs_script_engine_t *e, int64_t tenant, const char *slot, const char *src,
		       size_t len, const char *chunk, int with_tests, lua_State **pL,
		       struct evcs_sbx **px, char *msg, size_t msglen)
{
	struct evcs_sbx *x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(msg, msglen, "out of memory");
		return EVCS_ENOMEM;
	}
	x->lim = e->lim;
	x->tz = zone_for(e, tenant);
	x->tenant = tenant;
	snprintf(x->slot, sizeof(x->slot), "%s", slot);
	x->owner = e;
	x->log = sbx_log_fwd;
	char m[MSG - 128];
	lua_State *L = evcs_sbx_open(x, m, sizeof(m));
	if (!L) {
		snprintf(msg, msglen, "sandbox: %s", m);
		free(x);
		return EVCS_ENOMEM;
	}
	int rc = EVCS_EINVAL;
	x->phase = EVCS_SBX_LOADING;
	if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) {
		snprintf(msg, msglen, "compile: %s", lua_tostring(L, -1));
		goto fail;
	}
	if (evcs_sbx_call(x, L, 0, 0, m, sizeof(m))) {
		snprintf(msg, msglen, "load: %s", m);
		goto fail;
	}
	if (with_tests) {
		x->phase = EVCS_SBX_TESTING;
		lua_pushcfunction(L, tramp_list_tests);
		if (evcs_sbx_call(x, L, 0, 1, m, sizeof(m))) {
			snprintf(msg, msglen, "%s", m);
			goto fail;
		}
		lua_Integer n = lua_tointeger(L, -1);
		lua_pop(L, 1);
		for (lua_Integer i = 1; i <= n; i++) {
			char name[64] = "?";
			lua_pushcfunction(L, tramp_run_test);
			lua_pushlightuserdata(L, name);
			lua_pushinteger(L, i);
			int st = evcs_sbx_call(x, L, 2, 0, m, sizeof(m));
			evcs_sbx_ops_clear(x, 0);
			if (st) {
				snprintf(msg, msglen, "self-test '%s' failed: %s", name, m);
				goto fail;
			}
		}
	}
	x->phase = EVCS_SBX_RUNNING;
	struct inspect ins = {0, 0};
	lua_pushcfunction(L, tramp_inspect);
	lua_pushlightuserdata(L, &ins);
	if (evcs_sbx_call(x, L, 1, 0, m, sizeof(m))) {
		snprintf(msg, msglen, "%s", m);
		goto fail;
	}
	if (ins.has_quote && !ins.has_tariff) {
		snprintf(msg, msglen, "quote() is defined without tariff()");
		goto fail;
	}
	if (!strcmp(slot, "tariff") && !(ins.has_tariff && ins.has_quote)) {
		snprintf(msg, msglen, "the tariff script must define tariff() and quote()");
		goto fail;
	}
	if (ins.has_tariff) {
		evcs_tariff_model_t model;
		struct tariff_call c = {NULL, &model};
		lua_pushcfunction(L, tramp_tariff);
		lua_pushlightuserdata(L, &c);
		if (evcs_sbx_call(x, L, 1, 0, m, sizeof(m))) {
			snprintf(msg, msglen, "tariff(): %s", m);
			goto fail;
		}
	}
	*pL = L;
	*px = x;
	return 0;
fail:
	free_state(x, L);
	return rc;
}

static void sha256_hex(const char *src, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	out[0] = 0;
	if (!EVP_Digest(src, len, md, &mdlen, EVP_sha256(), NULL))
		return;
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int valid_slot_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return n >= 1 && n <= 32 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* ---- engine ---------------------------------------------------------------------- */
evcs_script_engine_t *evcs_script_engine_new(const evcs_script_limits_t *limits)
{
	evcs_script_engine_t *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	if (limits)
		e->lim = *limits;
	else
		evcs_script_limits_default(&e->lim);
	evcs_script_limits_t d;
	evcs_script_limits_default(&d);
	/* zero fields mean "default" so callers can set only what they configure */
	if (!e->lim.mem_bytes)
		e->lim.mem_bytes = d.mem_bytes;
	if (!e->lim.instructions)
		e->lim.instructions = d.instructions;
	if (!e->lim.wall_ms)
		e->lim.wall_ms = d.wall_ms;
	if (!e->lim.max_string)
		e->lim.max_string = d.max_string;
	if (!e->lim.max_source)
		e->lim.max_source = d.max_source;
	if (!e->lim.max_alarms)
		e->lim.max_alarms = d.max_alarms;
	if (!e->lim.max_log)
		e->lim.max_log = d.max_log;
	e->deftz = e->lim.tz ? e->lim.tz : evcs_tz_get(EVCS_TZ_DEFAULT, NULL, 0);
	if (!e->deftz)
		e->deftz = evcs_tz_fixed(8 * 3600);
	return e;
}

void evcs_script_engine_free(evcs_script_engine_t *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nt; i++) {
		for (size_t j = 0; j < e->t[i].n; j++)
			slot_free(e->t[i].slots[j]);
		free(e->t[i].slots);
	}
	free(e->t);
	free(e);
}

void evcs_script_engine_set_log(evcs_script_engine_t *e, evcs_script_log_fn fn, void *ud)
{
	e->log = fn;
	e->log_ud = ud;
}

void evcs_script_engine_set_tz(evcs_script_engine_t *e, evcs_script_tz_fn fn, void *ud)
{
	e->tz_fn = fn;
	e->tz_ud = ud;
}

void evcs_script_stats(const evcs_script_engine_t *e, evcs_script_stats_t *out)
{
	*out = e->st;
}

int evcs_script_load(evcs_script_engine_t *e, int64_t tenant, const char *slot,
		     const char *source, size_t len, const char *chunkname, char **err)
{
	if (err)
		*err = NULL;
	const char *sn = valid_slot_name(slot) ? slot : "?";
	if (sn[0] == '?') {
		set_err(err, tenant, sn, "script name must match [a-z0-9_]{1,32}");
		return EVCS_EINVAL;
	}
	if (!source || len > e->lim.max_source) {
		set_err(err, tenant, sn, "source is larger than %zu bytes", e->lim.max_source);
		e->st.load_failures++;
		return EVCS_EINVAL;
	}
	if (len >= 1 && source[0] == LUA_SIGNATURE[0]) {
		set_err(err, tenant, sn, "binary (precompiled) chunks are not allowed");
		e->st.load_failures++;
		return EVCS_EINVAL;
	}
	struct slot *s = find_slot(e, tenant, slot);
	if (s && s->busy) {
		set_err(err, tenant, sn, "busy");
		return EVCS_EBUSY;
	}
	char chunk[256], msg[MSG];
	if (chunkname)
		snprintf(chunk, sizeof(chunk), "@%s", chunkname);
	else
		snprintf(chunk, sizeof(chunk), "=%s.lua", slot);
	lua_State *L = NULL;
	struct evcs_sbx *x = NULL;
	e->st.loads++;
	int rc = build_state(e, tenant, slot, source, len, chunk, 1, &L, &x, msg, sizeof(msg));
	if (rc == 0) {
		/* the self-tests may have changed the script's state; serve from a
		 * fresh one */
		free_state(x, L);
		L = NULL;
		x = NULL;
		rc = build_state(e, tenant, slot, source, len, chunk, 0, &L, &x, msg, sizeof(msg));
	}
	if (rc) {
		e->st.load_failures++;
		set_err(err, tenant, sn, "rejected, previous version kept: %s", msg);
		elog(e, tenant, sn, EVCS_LOG_WARNING, "rejected, previous version kept: %s", msg);
		return rc;
	}
	char *copy = malloc(len + 1);
	if (!s && copy)
		s = add_slot(e, tenant, slot);
	if (!s || !copy) {
		free(copy);
		free_state(x, L);
		set_err(err, tenant, sn, "out of memory");
		return EVCS_ENOMEM;
	}
	memcpy(copy, source, len);
	copy[len] = 0;
	free_state(s->x, s->L);
	free(s->src);
	s->L = L;
	s->x = x;
	s->src = copy;
	s->len = len;
	snprintf(s->chunk, sizeof(s->chunk), "%s", chunk);
	sha256_hex(source, len, s->sha);
	s->mask = x->handler_mask;
	elog(e, tenant, sn, EVCS_LOG_NOTICE, "loaded %s (sha256 %.12s, %zu bytes)", chunk + 1, s->sha,
	     len);
	return EVCS_OK;
}

int evcs_script_load_file(evcs_script_engine_t *e, int64_t tenant, const char *slot,
			  const char *path, char **err)
{
	if (err)
		*err = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		set_err(err, tenant, slot, "%s: %s", path, strerror(errno));
		return EVCS_ENOENT;
	}
	size_t cap = e->lim.max_source + 1;
	char *buf = malloc(cap);
	if (!buf) {
		fclose(f);
		return EVCS_ENOMEM;
	}
	size_t n = fread(buf, 1, cap, f);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		set_err(err, tenant, slot, "%s: read error", path);
		return EVCS_ERR;
	}
	int rc = evcs_script_load(e, tenant, slot, buf, n, path, err);
	free(buf);
	return rc;
}

int evcs_script_load_tenant(evcs_script_engine_t *e, int64_t tenant, const char *tenant_dir,
			    const char *default_dir, char **err)
{
	if (err)
		*err = NULL;
	static const char *const slots[] = EVCS_SCRIPT_SLOTS;
	int first = EVCS_OK;
	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		char path[4096];
		const char *use = NULL;
		if (tenant_dir) {
			snprintf(path, sizeof(path), "%s/%s.lua", tenant_dir, slots[i]);
			if (access(path, F_OK) == 0)
				use = path;
		}
		if (!use && default_dir) {
			snprintf(path, sizeof(path), "%s/%s.lua", default_dir, slots[i]);
			if (access(path, F_OK) == 0)
				use = path;
		}
		if (!use)
			continue;
		char *e1 = NULL;
		int rc = evcs_script_load_file(e, tenant, slots[i], use, &e1);
		if (rc) {
			if (first == EVCS_OK)
				first = rc;
			if (err) {
				if (!*err) {
					*err = e1;
					e1 = NULL;
				} else {
					char *j = NULL;
					if (asprintf(&j, "%s; %s", *err, e1) >= 0) {
						free(*err);
						*err = j;
					}
				}
			}
		}
		free(e1);
	}
	return first;
}

int evcs_script_unload(evcs_script_engine_t *e, int64_t tenant, const char *slot)
{
	size_t pos;
	struct tenant *t = find_tenant(e, tenant, &pos);
	if (!t)
		return EVCS_ENOENT;
	int found = 0;
	for (size_t i = 0; i < t->n;) {
		if (!slot || !strcmp(t->slots[i]->name, slot)) {
			if (t->slots[i]->busy)
				return EVCS_EBUSY;
			slot_free(t->slots[i]);
			memmove(&t->slots[i], &t->slots[i + 1], (t->n - i - 1) * sizeof(*t->slots));
			t->n--;
			found = 1;
		} else {
			i++;
		}
	}
	if (t->n == 0) {
		free(t->slots);
		memmove(&e->t[pos], &e->t[pos + 1], (e->nt - pos - 1) * sizeof(*e->t));
		e->nt--;
	}
	return found ? EVCS_OK : EVCS_ENOENT;
}

const char *evcs_script_digest(evcs_script_engine_t *e, int64_t tenant, const char *slot)
{
	struct slot *s = find_slot(e, tenant, slot);
	return s ? s->sha : NULL;
}

/* A limit kill may leave the script's globals half-updated: rebuild the
 * state from the last good source (without re-running its self-tests). */
static void after_limit(evcs_script_engine_t *e, int64_t tenant, struct slot *s)
{
	e->st.limit_kills++;
	lua_State *L;
	struct evcs_sbx *x;
	char msg[MSG];
	if (build_state(e, tenant, s->name, s->src, s->len, s->chunk, 0, &L, &x, msg, sizeof(msg))) {
		elog(e, tenant, s->name, EVCS_LOG_ERR, "rebuild after a limit kill failed: %s", msg);
		return;
	}
	free_state(s->x, s->L);
	s->L = L;
	s->x = x;
}

/* Runs fn(ud) in the slot under the limits. Errors: logged once, *err set. */
static int slot_call(evcs_script_engine_t *e, int64_t tenant, struct slot *s, lua_CFunction fn,
		     void *ud, const evcs_tz_t *tz, const char *what, char **err)
{
	if (s->busy) {
		set_err(err, tenant, s->name, "%s: busy", what);
		return EVCS_EBUSY;
	}
	char msg[MSG];
	s->busy = 1;
	s->x->tz = tz ? tz : zone_for(e, tenant);
	e->st.calls++;
	lua_pushcfunction(s->L, fn);
	lua_pushlightuserdata(s->L, ud);
	int st = evcs_sbx_call(s->x, s->L, 1, 0, msg, sizeof(msg));
	s->busy = 0;
	if (st == 0)
		return EVCS_OK;
	e->st.errors++;
	evcs_sbx_ops_clear(s->x, 0);
	set_err(err, tenant, s->name, "%s: %s", what, msg);
	elog(e, tenant, s->name, EVCS_LOG_WARNING, "%s failed: %s", what, msg);
	if (st == 2)
		after_limit(e, tenant, s);
	return EVCS_EINVAL;
}

int evcs_script_tariff(evcs_script_engine_t *e, int64_t tenant, const char *pile,
		       evcs_tariff_model_t *out, char **err)
{
	if (err)
		*err = NULL;
	struct slot *s = find_slot(e, tenant, "tariff");
	if (!s) {
		set_err(err, tenant, "tariff", "no tariff script loaded");
		return EVCS_ENOENT;
	}
	evcs_tariff_model_t m;
	struct tariff_call c = {pile, &m};
	int rc = slot_call(e, tenant, s, tramp_tariff, &c, NULL, "tariff()", err);
	if (rc == 0)
		*out = m;
	return rc;
}

int evcs_script_quote(evcs_script_engine_t *e, int64_t tenant, const evcs_session_t *ses,
		      evcs_bill_t *bill, char **err)
{
	if (err)
		*err = NULL;
	struct slot *s = find_slot(e, tenant, "tariff");
	if (!s) {
		set_err(err, tenant, "tariff", "no tariff script loaded");
		return EVCS_ENOENT;
	}
	evcs_tariff_model_t m;
	if (ses->tariff) {
		m = *ses->tariff;
	} else {
		int rc = evcs_script_tariff(e, tenant, ses->pile, &m, err);
		if (rc)
			return rc;
	}
	for (int i = 0; i < EVCS_SLOTS; i++)
		if (m.slots[i] > 3) {
			set_err(err, tenant, s->name, "session tariff: slot %d is not a period 0..3", i);
			return EVCS_EINVAL;
		}
	const evcs_tz_t *ztz = ses->tz ? ses->tz : evcs_tz_fixed(ses->tz_offset_min * 60);
	if (!ztz) {
		set_err(err, tenant, s->name, "session: tz_offset_min %d is out of range",
			ses->tz_offset_min);
		return EVCS_EINVAL;
	}
	evcs_energy_piece_t *pieces = NULL;
	size_t np = 0;
	int64_t pk[4];
	if (ses->nsamples > 0) {
		char *e2 = NULL;
		if (evcs_session_pieces(ses, &m, &pieces, &np, pk, &e2)) {
			set_err(err, tenant, s->name, "session: %s", e2 ? e2 : "invalid samples");
			free(e2);
			return EVCS_EINVAL;
		}
	} else {
		for (int p = 0; p < 4; p++) {
			if (ses->period_kwh[p] < 0) {
				set_err(err, tenant, s->name, "session: negative %s energy",
					evcs_period_name(p));
				return EVCS_EINVAL;
			}
			pk[p] = ses->period_kwh[p];
		}
	}
	evcs_bill_t *b = calloc(1, sizeof(*b));
	if (!b) {
		free(pieces);
		return EVCS_ENOMEM;
	}
	struct quote_call q = {ses, &m, pieces, np, pk, b, ztz};
	int rc = slot_call(e, tenant, s, tramp_quote, &q, ztz, "quote()", err);
	free(pieces);
	if (rc == 0) {
		b->tariff = m;
		memcpy(b->period_kwh, pk, sizeof(pk));
		b->energy_kwh = pk[0] + pk[1] + pk[2] + pk[3];
		snprintf(b->script_sha256, sizeof(b->script_sha256), "%s", s->sha);
		int64_t sum = 0;
		for (size_t i = 0; i < b->nitems; i++)
			sum += b->items[i].amount;
		if (sum != b->total) { /* bill_from_lua guarantees it; never ship a bad bill */
			set_err(err, tenant, s->name, "internal: bill items do not sum to total");
			rc = EVCS_ERR;
		} else {
			*bill = *b;
		}
	}
	free(b);
	return rc;
}

/* ---- events ------------------------------------------------------------------------- */
int evcs_script_subscribed(evcs_script_engine_t *e, int64_t tenant, uint32_t type)
{
	if (type >= 64)
		return 0;
	struct tenant *t = find_tenant(e, tenant, NULL);
	if (!t)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->slots[i]->mask & ((uint64_t)1 << type))
			return 1;
	return 0;
}

static int dispatch(evcs_script_engine_t *e, int64_t tenant, uint32_t type, const evcs_event_t *ev,
		    int64_t ts_ms, const evcs_script_callbacks_t *cb, char **err)
{
	if (err)
		*err = NULL;
	const char *name = evcs_script_event_name(type);
	if (!name || type >= 64)
		return EVCS_ENOENT;
	int rc = EVCS_ENOENT;
	/* index-based: a callback may load or unload scripts of this tenant */
	for (size_t i = 0;; i++) {
		struct tenant *t = find_tenant(e, tenant, NULL);
		if (!t || i >= t->n)
			break;
		struct slot *s = t->slots[i];
		if (!(s->mask & ((uint64_t)1 << type)))
			continue;
		struct evcs_sbx *x = s->x;
		struct ev_call c = {ev, name, ts_ms};
		evcs_sbx_ops_clear(x, 0);
		x->cur_pile = ev ? ev->pile : NULL;
		x->cur_gun = ev ? ev->gun : 0;
		x->cur_ts = ts_ms;
		x->alarms_ok = type != EVCS_EV_ALARM_RAISED && type != EVCS_EV_ALARM_CLEARED;
		char slotname[40];
		snprintf(slotname, sizeof(slotname), "%s", s->name);
		char what[64];
		snprintf(what, sizeof(what), "on %s", name);
		int r = slot_call(e, tenant, s, tramp_event, &c, NULL, what, err);
		x = s->x; /* may have been rebuilt */
		x->cur_pile = NULL;
		x->alarms_ok = 0;
		if (r) {
			if (rc == EVCS_OK || rc == EVCS_ENOENT)
				rc = r;
			continue;
		}
		if (rc == EVCS_ENOENT)
			rc = EVCS_OK;
		/* detach the queue before calling out: the callbacks may re-enter */
		struct evcs_sbx_op *ops = x->ops;
		size_t nops = x->nops;
		x->ops = NULL;
		x->nops = x->capops = 0;
		for (size_t k = 0; k < nops; k++) {
			struct evcs_sbx_op *o = &ops[k];
			evcs_script_alarm_t a = {tenant,	  slotname, o->pile, o->gun, o->code,
						 o->severity, o->msg,	o->ts_ms};
			if (cb && o->raise && cb->raise)
				cb->raise(&a, cb->ud);
			else if (cb && !o->raise && cb->clear)
				cb->clear(&a, cb->ud);
			free(o->code);
			free(o->msg);
			free(o->pile);
		}
		free(ops);
	}
	return rc;
}

int evcs_script_on_event(evcs_script_engine_t *e, int64_t tenant, const evcs_event_t *ev,
			 const evcs_script_callbacks_t *cb, char **err)
{
	int64_t ts = ev->ts_ms ? ev->ts_ms : (int64_t)time(NULL) * 1000;
	return dispatch(e, tenant, ev->type, ev, ts, cb, err);
}

int evcs_script_tick(evcs_script_engine_t *e, int64_t tenant, int64_t now_ms,
		     const evcs_script_callbacks_t *cb, char **err)
{
	return dispatch(e, tenant, EVCS_SCRIPT_EV_TICK, NULL, now_ms, cb, err);
}
