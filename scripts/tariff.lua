-- scripts/tariff.lua: the default tariff, the standard 尖峰平谷 model.
--
-- Four periods (sharp 尖 = 0, peak 峰 = 1, flat 平 = 2, valley 谷 = 3), each
-- with an electricity rate and a service rate per kWh, and a map of the 48
-- half hours of the day to a period. tariff() is exactly what a YKC pile is
-- sent in frames 0x0A/0x58; quote() prices a finished session from its energy
-- per period, one electricity line and one service line per period used.
--
-- Units: rates in 0.00001 yuan/kWh (evcs.yuan parses "1.20000" exactly),
-- energy in 0.0001 kWh, amounts in 0.00001 yuan. Each line is rounded once,
-- half away from zero, by evcs.mul_div(kwh, rate, 10000); the total is the
-- exact sum of the lines. Copy this file to the tenant's script directory and
-- edit the three tables below; `evcsctl script check FILE` before deploying.

local Y = evcs.yuan

MODEL = "0001" -- 4 digits, sent to the pile as the billing-model code

RATES = {
  sharp  = { elec = Y"1.20000", service = Y"0.80000" },
  peak   = { elec = Y"1.00000", service = Y"0.80000" },
  flat   = { elec = Y"0.70000", service = Y"0.60000" },
  valley = { elec = Y"0.35000", service = Y"0.40000" },
}

-- Local time (Asia/Shanghai by default); a range may cross midnight.
SLOTS = evcs.slots{
  { "22:00", "08:00", "valley" },
  { "08:00", "10:00", "flat" },
  { "10:00", "12:00", "peak" },
  { "12:00", "14:00", "flat" },
  { "14:00", "17:00", "peak" },
  { "17:00", "19:00", "sharp" },
  { "19:00", "21:00", "peak" },
  { "21:00", "22:00", "flat" },
}

function tariff(pile)
  return { model = MODEL, rates = RATES, slots = SLOTS }
end

-- s.tariff is the model in force when the session started (or tariff()).
function quote(s)
  return { items = evcs.standard_items(s, s.tariff) }
end

-- Self-tests: run before this script replaces the previous one.
tests = {}

function tests.slot_map()
  local t = tariff()
  evcs.expect_eq(#t.slots, 48, "slot count")
  evcs.expect_eq(t.slots[1], evcs.VALLEY, "00:00")
  evcs.expect_eq(t.slots[16], evcs.VALLEY, "07:30")
  evcs.expect_eq(t.slots[17], evcs.FLAT, "08:00")
  evcs.expect_eq(t.slots[35], evcs.SHARP, "17:00")
  evcs.expect_eq(t.slots[48], evcs.VALLEY, "23:30")
end

function tests.prices_each_period()
  local s = { kwh = { sharp = 10000, peak = 0, flat = 25000, valley = 1234 }, tariff = tariff() }
  local bill = quote(s)
  evcs.expect_eq(#bill.items, 6, "line items (peak unused)")
  -- 1 kWh sharp: 1.20 + 0.80; 2.5 kWh flat: 1.75 + 1.50;
  -- 0.1234 kWh valley: 0.04319 + 0.04936
  evcs.expect_eq(evcs.sum(bill.items), 534255, "total")
end

function tests.rounding_is_half_away_from_zero()
  evcs.expect_eq(evcs.mul_div(1650, Y"0.90000", 10000), 14850, "0.1650 kWh x 0.90")
  evcs.expect_eq(evcs.mul_div(1, 5, 10), 1, "0.5 rounds up")
  evcs.expect_eq(evcs.mul_div(1, 4, 10), 0, "0.4 rounds down")
  evcs.expect_eq(evcs.mul_div(-1, 5, 10), -1, "-0.5 rounds away from zero")
end

function tests.empty_session_costs_nothing()
  local bill = quote({ kwh = { sharp = 0, peak = 0, flat = 0, valley = 0 }, tariff = tariff() })
  evcs.expect_eq(#bill.items, 0, "items")
end
