-- plugins/ykc/schema/002_legacy_records.sql: adopt the records stored before plugin ABI 2.
--
-- Until ABI 2 the core kept every 0x3B in its own table transaction_records (core migration 004).
-- Since then the raw record is this plugin's evidence (ykc_records, 001) and the core writes
-- transaction_records no more. This copies the older rows here so the plugin owns all of its
-- evidence; the digest is the SHA-256 of the body, exactly as the plugin computes it for new
-- records. The core's table is left in place (nothing reads or writes it any more) so that an
-- installation that runs without this plugin loses nothing; a later core migration drops it.
-- Idempotent: INSERT IGNORE on (pile_id, trade_no, digest).
INSERT IGNORE INTO ykc_records
  (tenant_id, session_id, pile_id, trade_no, gun_no, digest, raw_hex,
   sharp_price, sharp_loss_kwh, sharp_pile_amount, peak_price, peak_loss_kwh, peak_pile_amount,
   flat_price, flat_loss_kwh, flat_pile_amount, valley_price, valley_loss_kwh, valley_pile_amount,
   trade_flag, trade_time_ms, stop_reason, vin, physical_card, peer, received_ms)
SELECT tenant_id, session_id, pile_id, trade_no, gun_no, LOWER(SHA2(UNHEX(raw_hex), 256)), raw_hex,
   sharp_price, sharp_loss_kwh, sharp_amount, peak_price, peak_loss_kwh, peak_amount,
   flat_price, flat_loss_kwh, flat_amount, valley_price, valley_loss_kwh, valley_amount,
   trade_flag, trade_time_ms, LEAST(stop_reason, 65535), vin, physical_card, peer, received_ms
FROM transaction_records
WHERE trade_no REGEXP '^[0-9A-F]{32}$' AND raw_hex REGEXP '^([0-9A-Fa-f]{2})+$';
