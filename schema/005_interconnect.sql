-- 005_interconnect: CEC (T/CEC 102) partner platforms, their station permissions, and the
-- durable outbox for pushes.

-- One row per partner per tenant. The key sets follow docs/cec.md: DataSecret/DataSecretIV/
-- SigSecret check and decrypt what the partner sends us; the user_* set signs and encrypts what
-- we push to it. Secrets are the literal 16-character strings the standard uses.
CREATE TABLE partners (
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
  created_ms           BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_partners_operator (tenant_id, operator_id),
  UNIQUE KEY uk_partners_tenant_id (tenant_id, id),
  CONSTRAINT fk_partners_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Which stations a partner may see and charge at.
CREATE TABLE partner_stations (
  tenant_id   BIGINT NOT NULL,
  partner_id  BIGINT NOT NULL,
  station_id  BIGINT NOT NULL,
  can_charge  TINYINT(1) NOT NULL DEFAULT 1,
  PRIMARY KEY (partner_id, station_id),
  KEY ix_partner_stations_station (tenant_id, station_id),
  CONSTRAINT fk_pst_partner FOREIGN KEY (tenant_id, partner_id) REFERENCES partners (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT fk_pst_station FOREIGN KEY (tenant_id, station_id) REFERENCES stations (tenant_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Durable outbox. A producer inserts in the same transaction as the change it announces; a
-- sender claims due rows (state pending, next_attempt_ms <= now) by setting state inflight,
-- and finishes them done, or back to pending with attempts+1 and a later next_attempt_ms, or
-- dead after the kind's retry policy. idem_key makes a re-announcement a duplicate-key no-op.
CREATE TABLE outbox (
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
  CONSTRAINT fk_outbox_partner FOREIGN KEY (tenant_id, partner_id) REFERENCES partners (tenant_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
