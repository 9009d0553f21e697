-- examples/idle_fee.lua: standard 尖峰平谷 pricing plus an occupancy fee for
-- the minutes the car stays plugged in after charging ended.
-- The first FREE_MINUTES are free; each further started minute costs
-- IDLE_PER_MIN, up to IDLE_MAX.
local Y = evcs.yuan
FREE_MINUTES = 30
IDLE_PER_MIN = Y"0.50"
IDLE_MAX = Y"60.00"

RATES = {
  sharp  = { elec = Y"1.20", service = Y"0.80" },
  peak   = { elec = Y"1.00", service = Y"0.80" },
  flat   = { elec = Y"0.70", service = Y"0.60" },
  valley = { elec = Y"0.35", service = Y"0.40" },
}
SLOTS = evcs.slots{ { "22:00", "08:00", "valley" }, { "08:00", "17:00", "flat" },
                    { "17:00", "19:00", "sharp" }, { "19:00", "22:00", "peak" } }

function tariff(pile) return { model = "0101", rates = RATES, slots = SLOTS } end

function quote(s)
  local items = evcs.standard_items(s)
  local billable = s.idle_minutes - FREE_MINUTES
  if billable > 0 then
    -- minutes x price is exact: no rounding needed
    local fee = math.min(billable * IDLE_PER_MIN, IDLE_MAX)
    items[#items + 1] = { kind = "fee", label = "idle fee", unit = "min", qty = billable,
                          unit_price = IDLE_PER_MIN, amount = fee }
  end
  return { items = items }
end

tests = {}
local function session(idle)
  return { kwh = { sharp = 0, peak = 0, flat = 100000, valley = 0 }, idle_minutes = idle,
           tariff = tariff() }
end
function tests.no_fee_within_grace()
  evcs.expect_eq(evcs.sum(quote(session(30)).items), 1300000, "10 kWh flat only")
end
function tests.fee_after_grace()
  local b = quote(session(45))
  evcs.expect_eq(b.items[#b.items].amount, 15 * Y"0.50", "15 minutes")
  evcs.expect_eq(evcs.sum(b.items), 1300000 + 750000, "total")
end
function tests.fee_is_capped()
  evcs.expect_eq(quote(session(100000)).items[3].amount, IDLE_MAX, "cap")
end
