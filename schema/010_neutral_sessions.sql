-- 010_neutral_sessions: the protocol-neutral session model (plugin ABI 2, core/session.c).
-- Pile identities and trade numbers are whatever the protocol uses, up to 64 bytes of UTF-8
-- (YKC: 14 and 32 hex digits, OCPP: charge box id and transaction id), compared exactly
-- (utf8mb4_bin). The YKC-shaped CHECKs go. A session keeps the tariff snapshot the core took at
-- open in typed columns, and the close's digest (the idempotency key of a resent close).
-- The YKC 0x3B columns (transaction_records, record_conflicts.raw_hex) stay until nothing reads
-- them: the YKC plugin keeps its raw records in its own table.

ALTER TABLE piles
  DROP CONSTRAINT ck_piles_serial,
  MODIFY serial VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL
    COMMENT 'the identity the pile logs in with (protocol-defined)';

ALTER TABLE unclaimed_piles
  MODIFY serial VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

ALTER TABLE charging_sessions
  DROP CONSTRAINT ck_sessions_trade,
  MODIFY trade_no VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL
    COMMENT 'the session identity on the pile side, unique per pile',
  MODIFY physical_card VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL
    COMMENT 'card number / id token presented',
  MODIFY start_fail_reason INT NULL COMMENT 'the protocol''s start failure code',
  MODIFY stop_reason INT NULL COMMENT 'the protocol''s stop reason code (stored as is)',
  ADD COLUMN tariff_model CHAR(4) CHARACTER SET ascii NULL
    COMMENT 'tariff snapshot taken at open (the model the session is priced under)' AFTER tariff_id,
  ADD COLUMN tariff_sharp_elec_rate BIGINT NULL AFTER tariff_model,
  ADD COLUMN tariff_sharp_service_rate BIGINT NULL AFTER tariff_sharp_elec_rate,
  ADD COLUMN tariff_peak_elec_rate BIGINT NULL AFTER tariff_sharp_service_rate,
  ADD COLUMN tariff_peak_service_rate BIGINT NULL AFTER tariff_peak_elec_rate,
  ADD COLUMN tariff_flat_elec_rate BIGINT NULL AFTER tariff_peak_service_rate,
  ADD COLUMN tariff_flat_service_rate BIGINT NULL AFTER tariff_flat_elec_rate,
  ADD COLUMN tariff_valley_elec_rate BIGINT NULL AFTER tariff_flat_service_rate,
  ADD COLUMN tariff_valley_service_rate BIGINT NULL AFTER tariff_valley_elec_rate,
  ADD COLUMN tariff_slots CHAR(48) CHARACTER SET ascii NULL AFTER tariff_valley_service_rate,
  ADD COLUMN tariff_script TINYINT(1) NULL COMMENT '1: the model came from the tenant tariff script'
    AFTER tariff_slots,
  ADD COLUMN total_loss_kwh BIGINT NULL COMMENT 'line loss the pile reported' AFTER total_kwh,
  ADD COLUMN close_digest VARBINARY(128) NULL
    COMMENT 'the protocol plugin''s digest of the close (equal = resend, other = conflict)',
  ADD COLUMN close_source VARCHAR(32) NOT NULL DEFAULT '' COMMENT 'plugin that closed it',
  ADD COLUMN closed_ms BIGINT NULL COMMENT 'the core''s clock when the close was stored',
  ADD CONSTRAINT ck_sessions_slots CHECK (tariff_slots IS NULL OR tariff_slots REGEXP '^[0-3]{48}$');

ALTER TABLE transaction_records
  DROP CONSTRAINT ck_records_trade,
  MODIFY trade_no VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

-- A close resent with another digest: the first stays on the session, the resend lands here.
ALTER TABLE record_conflicts
  MODIFY record_id BIGINT NULL COMMENT 'the stored transaction_records row (ABI 1 txn.record)',
  MODIFY trade_no VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY raw_hex VARCHAR(1024) CHARACTER SET ascii NOT NULL DEFAULT ''
    COMMENT 'the differing resend (ABI 1 txn.record)',
  ADD COLUMN session_id BIGINT NULL COMMENT 'the session whose close was resent' AFTER record_id,
  ADD COLUMN digest VARBINARY(128) NULL COMMENT 'the resend''s digest' AFTER raw_hex,
  ADD KEY ix_conflicts_session (tenant_id, session_id),
  ADD CONSTRAINT fk_conflicts_session FOREIGN KEY (tenant_id, session_id)
    REFERENCES charging_sessions (tenant_id, id);

-- A session's connector is found by the session (the close releases it without locking the
-- gun's row for every other close).
ALTER TABLE connectors ADD KEY ix_connectors_session (current_session_id);
