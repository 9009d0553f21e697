-- scripts/alarms.lua: default alarm rules.
--
-- Handlers receive hook-bus events (see scripts/README.md, "Events") and
-- raise or clear alarms identified by (pile, gun, code). State kept in
-- locals here lives as long as this script version: a reload, or a call
-- killed by a limit, starts it afresh (the rules below tolerate that).

OFFLINE_HEARTBEATS = 3   -- raise PILE_OFFLINE after this many missed heartbeats
HEARTBEAT_S = 60         -- the piles' heartbeat interval
OVERTEMP_C = 90          -- raise GUN_OVERTEMP at or above
OVERTEMP_CLEAR_C = 80    -- clear it at or below
START_FAIL_LIMIT = 3     -- consecutive failed starts on one gun
AMOUNT_TOLERANCE = evcs.yuan("0.01") -- platform vs pile total

local function key(ev) return ev.pile .. "#" .. ev.gun end

-- pile offline longer than N heartbeats ------------------------------------
local offline = {} -- pile -> { since = ms, raised = bool }

evcs.on("pile_offline", function(ev)
  offline[ev.pile] = { since = ev.ts_ms, raised = false }
end)

evcs.on("pile_online", function(ev)
  offline[ev.pile] = nil
  -- cleared unconditionally: the raise may predate a reload of this script
  evcs.clear_alarm("PILE_OFFLINE", { gun = 0 })
end)

evcs.on("tick", function(ev)
  local limit = OFFLINE_HEARTBEATS * HEARTBEAT_S * 1000
  for pile, o in pairs(offline) do
    if not o.raised and ev.ts_ms - o.since >= limit then
      o.raised = true
      evcs.raise_alarm("PILE_OFFLINE", "major",
        string.format("pile %s offline for more than %d heartbeats (%d s)",
          pile, OFFLINE_HEARTBEATS, (ev.ts_ms - o.since) // 1000),
        { pile = pile, gun = 0 })
    end
  end
end)

-- gun over-temperature and meter going backwards ----------------------------
local hot, meter = {}, {}

evcs.on("meter_sample", function(ev)
  local k = key(ev)
  local t = ev.gun_temp_c
  if t ~= nil then
    if t >= OVERTEMP_C and not hot[k] then
      hot[k] = true
      evcs.raise_alarm("GUN_OVERTEMP", "critical",
        string.format("gun temperature %d C (limit %d C)", t, OVERTEMP_C))
    elseif t <= OVERTEMP_CLEAR_C and hot[k] then
      hot[k] = nil
      evcs.clear_alarm("GUN_OVERTEMP")
    end
  end
  if ev.kwh ~= nil then
    local last = meter[k]
    if last and last.trade_no == ev.trade_no then
      if ev.kwh < last.kwh and not last.flagged then
        last.flagged = true
        evcs.raise_alarm("METER_BACKWARDS", "major",
          string.format("session %s: meter went from %s to %s kWh", tostring(ev.trade_no),
            evcs.fmt_kwh(last.kwh), evcs.fmt_kwh(ev.kwh)))
      end
      if ev.kwh > last.kwh then last.kwh = ev.kwh end
    else
      if last and last.flagged then evcs.clear_alarm("METER_BACKWARDS") end
      meter[k] = { trade_no = ev.trade_no, kwh = ev.kwh }
    end
  end
end)

-- abnormal stop reasons and repeated start failures --------------------------
-- YKC stop reasons: 0x40-0x49 normal, 0x4A-0x69 start failed, 0x6A-0x90 abnormal.
local fails = {} -- gun key -> { n = count, last = trade_no, raised = bool }

local function start_failed(ev, why)
  local f = fails[key(ev)] or { n = 0 }
  fails[key(ev)] = f
  if ev.trade_no ~= nil and f.last == ev.trade_no then return end -- same attempt
  f.last = ev.trade_no
  f.n = f.n + 1
  if f.n >= START_FAIL_LIMIT and not f.raised then
    f.raised = true
    evcs.raise_alarm("START_FAILURES", "major",
      string.format("%d consecutive failed starts (last: %s)", f.n, why))
  end
end

local function start_ok(ev)
  local f = fails[key(ev)]
  if f then
    fails[key(ev)] = nil
    if f.raised then evcs.clear_alarm("START_FAILURES") end
  end
end

evcs.on("session_started", function(ev)
  if ev.result == 0 or ev.result == false then
    start_failed(ev, tostring(ev.reason or "refused"))
  else
    start_ok(ev)
  end
end)

local abnormal = {} -- gun key -> true while ABNORMAL_STOP is raised

evcs.on("session_stopped", function(ev)
  local r, k = ev.stop_reason, key(ev)
  if r == nil then return end
  local text = ev.stop_reason_text or string.format("0x%02X", r)
  if r >= 0x4A and r <= 0x69 then
    start_failed(ev, text)
  elseif r >= 0x6A and r <= 0x90 then
    abnormal[k] = true
    evcs.raise_alarm("ABNORMAL_STOP", "warning",
      string.format("session %s stopped abnormally: %s (0x%02X)", tostring(ev.trade_no), text, r))
  elseif r >= 0x40 and r <= 0x49 and abnormal[k] then
    abnormal[k] = nil
    evcs.clear_alarm("ABNORMAL_STOP")
  end
end)

-- faults reported by the pile ------------------------------------------------
evcs.on("pile_fault", function(ev)
  evcs.raise_alarm("PILE_FAULT", "major",
    string.format("frame %s code %s %s", tostring(ev.frame), tostring(ev.code), tostring(ev.detail or "")))
end)

evcs.on("gun_status", function(ev)
  if ev.fault == false or ev.fault == 0 then evcs.clear_alarm("PILE_FAULT") end
end)

-- platform bill vs the pile's own amount ------------------------------------
evcs.on("transaction_closed", function(ev)
  local mine, theirs = ev.total_amount, ev.pile_amount
  if mine ~= nil and theirs ~= nil and math.abs(mine - theirs) > AMOUNT_TOLERANCE then
    evcs.raise_alarm("AMOUNT_MISMATCH", "warning",
      string.format("session %s: platform %s yuan, pile %s yuan", tostring(ev.trade_no),
        evcs.fmt_yuan(mine), evcs.fmt_yuan(theirs)))
  end
end)

-- self-tests -------------------------------------------------------------------
tests = {}

local function one(ops, op, code)
  evcs.expect_eq(#ops, 1, "alarm operations")
  evcs.expect_eq(ops[1].op, op, "op")
  evcs.expect_eq(ops[1].code, code, "code")
  return ops[1]
end

function tests.offline_after_n_heartbeats()
  evcs.simulate("pile_offline", { pile = "T1", ts_ms = 1000000 })
  evcs.expect_eq(#evcs.simulate("tick", { ts_ms = 1000000 + 179000 }), 0, "too early")
  local a = one(evcs.simulate("tick", { ts_ms = 1000000 + 180000 }), "raise", "PILE_OFFLINE")
  evcs.expect_eq(a.pile, "T1", "pile")
  evcs.expect_eq(#evcs.simulate("tick", { ts_ms = 1000000 + 999000 }), 0, "raised once")
  one(evcs.simulate("pile_online", { pile = "T1" }), "clear", "PILE_OFFLINE")
end

function tests.overtemp_with_hysteresis()
  local ev = { pile = "T2", gun = 1, gun_temp_c = 95 }
  evcs.expect_eq(one(evcs.simulate("meter_sample", ev), "raise", "GUN_OVERTEMP").severity, "critical", "sev")
  ev.gun_temp_c = 85
  evcs.expect_eq(#evcs.simulate("meter_sample", ev), 0, "inside hysteresis")
  ev.gun_temp_c = 80
  one(evcs.simulate("meter_sample", ev), "clear", "GUN_OVERTEMP")
end

function tests.meter_backwards()
  local ev = { pile = "T3", gun = 2, trade_no = "A", kwh = 5000 }
  evcs.simulate("meter_sample", ev)
  ev.kwh = 4000
  one(evcs.simulate("meter_sample", ev), "raise", "METER_BACKWARDS")
  ev.kwh = 3000
  evcs.expect_eq(#evcs.simulate("meter_sample", ev), 0, "once per session")
  one(evcs.simulate("meter_sample", { pile = "T3", gun = 2, trade_no = "B", kwh = 0 }), "clear", "METER_BACKWARDS")
end

function tests.repeated_start_failures()
  for i = 1, START_FAIL_LIMIT - 1 do
    evcs.expect_eq(#evcs.simulate("session_started", { pile = "T4", gun = 1, trade_no = "F" .. i, result = 0 }), 0, "below limit")
  end
  -- the record of the same attempt does not count twice
  evcs.simulate("session_stopped", { pile = "T4", gun = 1, trade_no = "F" .. (START_FAIL_LIMIT - 1), stop_reason = 0x4B })
  one(evcs.simulate("session_started", { pile = "T4", gun = 1, trade_no = "F9", result = 0 }), "raise", "START_FAILURES")
  one(evcs.simulate("session_started", { pile = "T4", gun = 1, trade_no = "OK", result = 1 }), "clear", "START_FAILURES")
end

function tests.abnormal_stop()
  one(evcs.simulate("session_stopped", { pile = "T5", gun = 1, trade_no = "X", stop_reason = 0x6C }), "raise", "ABNORMAL_STOP")
  one(evcs.simulate("session_stopped", { pile = "T5", gun = 1, trade_no = "Y", stop_reason = 0x41 }), "clear", "ABNORMAL_STOP")
  evcs.expect_eq(#evcs.simulate("session_stopped", { pile = "T5", gun = 1, trade_no = "Z", stop_reason = 0x45 }), 0, "normal")
end

function tests.amount_mismatch()
  evcs.expect_eq(#evcs.simulate("transaction_closed", { pile = "T6", total_amount = 100000, pile_amount = 99000 }), 0, "within tolerance")
  one(evcs.simulate("transaction_closed", { pile = "T6", total_amount = 100000, pile_amount = 98999 }), "raise", "AMOUNT_MISMATCH")
end
