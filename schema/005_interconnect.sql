-- 005_interconnect: intentionally empty. This migration used to create the CEC (T/CEC 102)
-- interconnect tables partners, partner_stations and outbox in the core schema. They belong to
-- the cec plugin now: plugins/cec/schema/001_partners_outbox.sql renames existing ones to
-- cec_partners, cec_partner_stations and cec_outbox (their rows survive) or creates them, when
-- `evcsd --migrate` runs with the plugin configured. The number stays taken, because databases
-- that applied the old text have it recorded; a fresh install creates nothing of CEC here.
DO 0;
