-- examples/bill_cap.lua: standard pricing, but no session costs more than
-- CAP. The excess is removed with one "adjust" line so the items still sum
-- to the total.
local Y = evcs.yuan
CAP = Y"50.00"

RATES = {
  sharp  = { elec = Y"1.20", service = Y"0.80" },
  peak   = { elec = Y"1.00", service = Y"0.80" },
  flat   = { elec = Y"0.70", service = Y"0.60" },
  valley = { elec = Y"0.35", service = Y"0.40" },
}
SLOTS = evcs.slots{ { "00:00", "08:00", "valley" }, { "08:00", "17:00", "flat" },
                    { "17:00", "20:00", "sharp" }, { "20:00", "24:00", "peak" } }

function tariff(pile) return { model = "0103", rates = RATES, slots = SLOTS } end

function quote(s)
  local items = evcs.standard_items(s)
  local total = evcs.sum(items)
  if total > CAP then
    items[#items + 1] = { kind = "adjust", label = "price cap " .. evcs.fmt_yuan(CAP),
                          amount = CAP - total }
  end
  return { items = items, total = math.min(total, CAP) }
end

tests = {}
function tests.under_cap()
  local b = quote({ kwh = { sharp = 0, peak = 0, flat = 10000, valley = 0 }, tariff = tariff() })
  evcs.expect_eq(b.total, 130000, "1 kWh flat")
end
function tests.capped()
  local b = quote({ kwh = { sharp = 0, peak = 0, flat = 1000000, valley = 0 }, tariff = tariff() })
  evcs.expect_eq(b.total, CAP, "capped")
  evcs.expect_eq(evcs.sum(b.items), CAP, "items sum to the cap")
end
