-- 006_partner_profile: intentionally empty. This migration used to add partners.profile (the
-- per-partner CEC protocol profile); the column is part of the cec plugin's own cec_partners
-- table now (plugins/cec/schema/001_partners_outbox.sql, which also adds it to a renamed table
-- that lacks it). The number stays taken: databases that applied the old text have it recorded.
DO 0;
