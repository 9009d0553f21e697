-- examples/member_discount.lua: standard pricing with a discount on the
-- service fee for members and fleets. The discount is one negative line item,
-- rounded once (half away from zero) with evcs.mul_div.
local Y = evcs.yuan
-- percent off the service fee, by member level or fleet name
MEMBER_PERCENT = { silver = 5, gold = 10, platinum = 20 }
FLEET_PERCENT = { ["city-taxi"] = 15 }

RATES = {
  sharp  = { elec = Y"1.20", service = Y"0.80" },
  peak   = { elec = Y"1.00", service = Y"0.80" },
  flat   = { elec = Y"0.70", service = Y"0.60" },
  valley = { elec = Y"0.35", service = Y"0.40" },
}
SLOTS = evcs.slots{ { "00:00", "08:00", "valley" }, { "08:00", "18:00", "flat" },
                    { "18:00", "21:00", "peak" }, { "21:00", "24:00", "valley" } }

function tariff(pile) return { model = "0102", rates = RATES, slots = SLOTS } end

function quote(s)
  local items = evcs.standard_items(s)
  -- the better of the member and fleet discounts, never both
  local pct, why = 0, nil
  if s.member and (MEMBER_PERCENT[s.member] or 0) > pct then
    pct, why = MEMBER_PERCENT[s.member], "member " .. s.member
  end
  if s.fleet and (FLEET_PERCENT[s.fleet] or 0) > pct then
    pct, why = FLEET_PERCENT[s.fleet], "fleet " .. s.fleet
  end
  if pct > 0 then
    local service = 0
    for _, it in ipairs(items) do
      if it.kind == "service" then service = service + it.amount end
    end
    items[#items + 1] = { kind = "discount", label = why .. " -" .. pct .. "% service",
                          unit = "%", qty = pct, amount = -evcs.mul_div(service, pct, 100) }
  end
  return { items = items }
end

tests = {}
local function s(member, fleet)
  return { kwh = { sharp = 0, peak = 0, flat = 12345, valley = 0 }, member = member,
           fleet = fleet, tariff = tariff() }
end
function tests.no_discount()
  evcs.expect_eq(#quote(s()).items, 2, "items")
end
function tests.gold_member()
  local b = quote(s("gold"))
  -- service 1.2345 kWh x 0.60 = 0.74070; 10% = 0.07407
  evcs.expect_eq(b.items[3].amount, -7407, "discount")
end
function tests.fleet_beats_member()
  local b = quote(s("silver", "city-taxi"))
  evcs.expect_eq(b.items[3].label, "fleet city-taxi -15% service", "label")
  -- 15% of 74070 = 11110.5 -> 11111 (half away from zero)
  evcs.expect_eq(b.items[3].amount, -11111, "rounded")
end
