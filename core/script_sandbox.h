/*
 * core/script_sandbox.h: internal interface between core/script.c (the
 * engine) and core/script_sandbox.c (one sandboxed lua_State). Not public.
 *
 * A struct evcs_sbx is owned by the engine's slot, outlives its lua_State
 * (it is the allocator's userdata), and is only touched from the thread that
 * runs the state.
 */
#ifndef EVCS_SCRIPT_SANDBOX_H
#define EVCS_SCRIPT_SANDBOX_H

#include <lua.h>

#include "script.h"

#define EVCS_SBX_HOOK_EVERY 1000
/* bound on len^(items+1) for one pattern call (see pattern_guard) */
#define EVCS_SBX_PATTERN_COST 20000000ULL

enum { EVCS_SBX_SETUP, EVCS_SBX_LOADING, EVCS_SBX_TESTING, EVCS_SBX_RUNNING };

struct evcs_sbx_op {
	int raise;
	int severity;
	int gun;
	int64_t ts_ms;
	char *code, *msg, *pile;
};

struct evcs_sbx {
	evcs_script_limits_t lim;
	const evcs_tz_t *tz; /* local time of the current call (set by script.c before each) */
	int64_t tenant;
	char slot[40];
	void *owner; /* the engine */
	void (*log)(struct evcs_sbx *x, int level, const char *line);

	size_t used, peak, max_block;
	int armed, killed;
	uint64_t instr;
	int64_t deadline_ns;
	char kill_msg[128];
	unsigned nlog;

	int phase;
	int alarms_ok;
	const char *cur_pile;
	int cur_gun;
	int64_t cur_ts;
	struct evcs_sbx_op *ops;
	size_t nops, capops;
	uint64_t handler_mask;
};

/* Builds the sandboxed state. x->lim, tenant, slot, log must be set. NULL
 * with msg filled on failure. */
lua_State *evcs_sbx_open(struct evcs_sbx *x, char *msg, size_t msglen);
void evcs_sbx_close(struct evcs_sbx *x, lua_State *L);
/* lua_pcall under the limits. 0 ok; 1 script error; 2 a limit was hit (the
 * state should be rebuilt). msg receives the error text. */
int evcs_sbx_call(struct evcs_sbx *x, lua_State *L, int nargs, int nres, char *msg, size_t msglen);
void evcs_sbx_ops_clear(struct evcs_sbx *x, size_t from);
int evcs_sbx_event_type(const char *name);

#endif
