-- examples/holiday_weekend.lua: on weekends and public holidays all energy
-- is billed at the valley rates, whatever the slot map says. The pile is
-- still sent the weekday model (a YKC pile knows only one map); the platform
-- bill is what the driver pays, and the amount-mismatch alarm tolerance
-- should allow for the difference on those days, or the tenant sends a
-- different model before weekends.
local Y = evcs.yuan
HOLIDAYS = { ["2024-10-01"] = true, ["2024-10-02"] = true, ["2024-10-03"] = true }

RATES = {
  sharp  = { elec = Y"1.20", service = Y"0.80" },
  peak   = { elec = Y"1.00", service = Y"0.80" },
  flat   = { elec = Y"0.70", service = Y"0.60" },
  valley = { elec = Y"0.35", service = Y"0.40" },
}
SLOTS = evcs.slots{ { "00:00", "08:00", "valley" }, { "08:00", "17:00", "flat" },
                    { "17:00", "20:00", "sharp" }, { "20:00", "24:00", "peak" } }

function tariff(pile) return { model = "0104", rates = RATES, slots = SLOTS } end

local function off_day(piece)
  return piece.wday >= 6 or HOLIDAYS[piece.date]
end

function quote(s)
  -- s.pieces: energy per local half hour with its date and ISO weekday
  -- (empty when the session carries per-period energy only)
  local kwh = evcs.kwh_by_period(s, function(pc)
    if off_day(pc) then return evcs.VALLEY end
    return pc.period
  end)
  return { items = evcs.standard_items(s, s.tariff, kwh) }
end

tests = {}
local function one_piece(date, wday, slot)
  local t = tariff()
  return { tariff = t, kwh = {}, pieces = { { kwh = 10000, date = date, wday = wday, slot = slot,
                                              period = t.slots[slot] } } }
end
function tests.weekday_sharp()
  evcs.expect_eq(quote(one_piece("2024-10-08", 2, 35)).items[1].period, evcs.SHARP, "Tuesday 17:00")
end
function tests.saturday_is_valley()
  evcs.expect_eq(quote(one_piece("2024-10-12", 6, 35)).items[1].period, evcs.VALLEY, "Saturday")
end
function tests.holiday_is_valley()
  evcs.expect_eq(quote(one_piece("2024-10-02", 3, 35)).items[1].period, evcs.VALLEY, "National Day")
end
