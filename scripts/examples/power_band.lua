-- examples/power_band.lua: the service rate depends on the session's peak
-- power (fast charging costs more). Electricity follows the standard periods.
local Y = evcs.yuan
-- { from watts, service rate per kWh }, ascending
BANDS = { { 0, Y"0.40" }, { 60000, Y"0.60" }, { 120000, Y"0.80" } }

RATES = {
  sharp  = { elec = Y"1.20", service = Y"0.40" },
  peak   = { elec = Y"1.00", service = Y"0.40" },
  flat   = { elec = Y"0.70", service = Y"0.40" },
  valley = { elec = Y"0.35", service = Y"0.40" },
}
SLOTS = evcs.slots{ { "00:00", "08:00", "valley" }, { "08:00", "17:00", "flat" },
                    { "17:00", "20:00", "sharp" }, { "20:00", "24:00", "peak" } }

-- the pile is sent the lowest band; the bill applies the band reached
function tariff(pile) return { model = "0105", rates = RATES, slots = SLOTS } end

local function band_rate(w)
  local r = BANDS[1][2]
  for _, b in ipairs(BANDS) do
    if w >= b[1] then r = b[2] end
  end
  return r
end

function quote(s)
  local rate = band_rate(s.peak_power_w)
  local items = {}
  for p = 0, 3 do
    local name = evcs.PERIODS[p + 1]
    local q = s.kwh[name]
    if q > 0 then
      items[#items + 1] = evcs.line("energy", p, name .. " electricity", q, s.tariff.rates[name].elec)
      items[#items + 1] = evcs.line("service", p, name .. " service @" .. s.peak_power_w // 1000 .. " kW", q, rate)
    end
  end
  return { items = items }
end

tests = {}
local function s(w)
  return { kwh = { sharp = 0, peak = 0, flat = 10000, valley = 0 }, peak_power_w = w, tariff = tariff() }
end
function tests.slow()
  evcs.expect_eq(quote(s(7000)).items[2].unit_price, Y"0.40", "7 kW")
end
function tests.fast()
  evcs.expect_eq(quote(s(60000)).items[2].unit_price, Y"0.60", "60 kW")
  evcs.expect_eq(quote(s(150000)).items[2].amount, Y"0.80", "150 kW, 1 kWh")
end
