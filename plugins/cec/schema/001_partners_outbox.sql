-- 001_partners_outbox: the CEC (T/CEC 102) plugin's own tables: partner platforms, the stations
-- each may see, the durable push outbox, and the StartChargeSeq of every start a partner asked
-- for. Applied by `evcsd --migrate` when the cec plugin is configured.
--
-- Upgrade: these tables were the core's (schema/005_interconnect.sql, 006_partner_profile.sql,
-- now no-ops) under the names partners, partner_stations and outbox. They are renamed first, so
-- an existing installation keeps its partners, permissions and undelivered pushes (foreign keys
-- follow a renamed table; constraint names stay as they were, and fresh tables use the same
-- names, so both paths give one schema). On a fresh database the renames do nothing.
RENAME TABLE IF EXISTS partners TO cec_partners;
RENAME TABLE IF EXISTS partner_stations TO cec_partner_stations;
RENAME TABLE IF EXISTS outbox TO cec_outbox;

-- One row per partner per tenant. The key sets follow docs/cec.md: DataSecret/DataSecretIV/
-- SigSecret check and decrypt what the partner sends us; the user_* set signs and encrypts what
-- we push to it. Secrets are the literal 16-character strings the standard uses.
CREATE TABLE IF NOT EXISTS cec_partners (
  id                   BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id            BIGINT NOT NULL,
  name                 VARCHAR(64) NOT NULL,
  operator_id          CHAR(9) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'partner organisation code',
  our_operator_id      CHAR(9) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'tenant organisation code shown to it',
  base_url             VARCHAR(255) NOT NULL DEFAULT '' COMMENT 'partner endpoint prefix for pushes and queries',
  operator_secret      VARCHAR(64) NOT NULL DEFAULT '',
  data_secret          CHAR(16) NOT NULL DEFAULT '',
  data_secret_iv       CHAR(16) NOT NULL DEFAULT '',
  sig_secret           VARCHAR(64) NOT NULL DEFAULT '',
  user_operator_secret VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'secret we present to obtain its token',
  user_data_secret     CHAR(16) NOT NULL DEFAULT '',
  user_data_secret_iv  CHAR(16) NOT NULL DEFAULT '',
  user_sig_secret      VARCHAR(64) NOT NULL DEFAULT '',
  access_token         VARCHAR(512) NULL COMMENT 'token it issued to us (cache)',
  token_expires_ms     BIGINT NULL,
  status               ENUM('active','disabled') NOT NULL DEFAULT 'active',
  profile              JSON NOT NULL DEFAULT '{}' COMMENT 'CEC profile: preset + flags',
  created_ms           BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_partners_operator (tenant_id, operator_id),
  UNIQUE KEY uk_partners_tenant_id (tenant_id, id),
  CONSTRAINT fk_partners_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
-- An installation that had 005 but not yet 006 (now a no-op) lacks the profile column.
-- The profile: an optional "preset" (cec2016|orise|xj|cjv|sh) applied first, then any of the
-- cec_profile_t flags by name (plugins/cec/cec_proto.h); '{}' = the 2016 text.
ALTER TABLE cec_partners ADD COLUMN IF NOT EXISTS profile JSON NOT NULL DEFAULT '{}' COMMENT 'CEC profile: preset + flags' AFTER status;

-- Which stations a partner may see and charge at.
CREATE TABLE IF NOT EXISTS cec_partner_stations (
  tenant_id   BIGINT NOT NULL,
  partner_id  BIGINT NOT NULL,
  station_id  BIGINT NOT NULL,
  can_charge  TINYINT(1) NOT NULL DEFAULT 1,
  PRIMARY KEY (partner_id, station_id),
  KEY ix_partner_stations_station (tenant_id, station_id),
  CONSTRAINT fk_pst_partner FOREIGN KEY (tenant_id, partner_id) REFERENCES cec_partners (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT fk_pst_station FOREIGN KEY (tenant_id, station_id) REFERENCES stations (tenant_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Durable push outbox. A push is stored before its first attempt; the sender finishes a row
-- done, or back to pending with attempts+1 and a later next_attempt_ms, or dead after the retry
-- policy. idem_key makes a re-announcement a duplicate-key no-op.
CREATE TABLE IF NOT EXISTS cec_outbox (
  id               BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id        BIGINT NOT NULL,
  partner_id       BIGINT NULL,
  kind             VARCHAR(48) CHARACTER SET ascii NOT NULL COMMENT 'e.g. notification_stationStatus',
  payload          JSON NOT NULL,
  state            ENUM('pending','inflight','done','dead') NOT NULL DEFAULT 'pending',
  attempts         INT NOT NULL DEFAULT 0,
  next_attempt_ms  BIGINT NOT NULL DEFAULT 0,
  idem_key         VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  last_error       VARCHAR(512) NOT NULL DEFAULT '',
  created_ms       BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  done_ms          BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_outbox_idem (tenant_id, kind, idem_key),
  KEY ix_outbox_due (state, next_attempt_ms),
  KEY ix_outbox_partner (tenant_id, partner_id, state),
  CONSTRAINT fk_outbox_partner FOREIGN KEY (tenant_id, partner_id) REFERENCES cec_partners (tenant_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per query_start_charge a partner made: its StartChargeSeq (unique per partner: a
-- repeated one is refused, §8) and where it went. The charging session itself is the core's
-- charging_sessions row, which the pile's protocol plugin opens with the same partner_id and
-- partner_seq (the "start" command carries them); until then this row is the whole record.
CREATE TABLE IF NOT EXISTS cec_starts (
  id            BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id     BIGINT NOT NULL,
  partner_id    BIGINT NOT NULL,
  partner_seq   VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'CEC StartChargeSeq',
  station_id    BIGINT NULL,
  pile_id       BIGINT NOT NULL,
  connector_id  BIGINT NULL,
  gun_no        SMALLINT NOT NULL,
  trade_no      VARCHAR(64) CHARACTER SET ascii NOT NULL COMMENT 'the trade number sent with "start"',
  requested_ms  BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_cec_starts_seq (tenant_id, partner_id, partner_seq),
  CONSTRAINT fk_cec_starts_partner FOREIGN KEY (tenant_id, partner_id) REFERENCES cec_partners (tenant_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Starts recorded before the move lived only in charging_sessions ('pending' rows the plugin
-- wrote itself): carry their StartChargeSeqs over so a repeat is still refused.
INSERT IGNORE INTO cec_starts (tenant_id, partner_id, partner_seq, station_id, pile_id, connector_id, gun_no,
                               trade_no, requested_ms)
  SELECT s.tenant_id, s.partner_id, s.partner_seq, s.station_id, s.pile_id, s.connector_id, s.gun_no, s.trade_no,
         s.requested_ms
  FROM charging_sessions s JOIN cec_partners p ON p.tenant_id = s.tenant_id AND p.id = s.partner_id
  WHERE s.partner_seq IS NOT NULL;
