-- 009_tenant_timezone: the IANA time zone of a tenant's local time.
-- NULL = the installation's [core] timezone (evcsd.conf, default Asia/Shanghai). The daemon
-- checks names against the tz database (tzdata) when the operator API writes them; the column
-- holds the name only ("Europe/Berlin"), never an offset, so DST follows the tz rules.
-- Local time drives the dashboard's day and month, the tariff's half-hour slots when a session
-- is priced, and os.date/os.time/evcs.date in tenant scripts.

ALTER TABLE tenants
  ADD COLUMN timezone VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL DEFAULT NULL
    COMMENT 'IANA zone name; NULL = [core] timezone' AFTER settings;
