-- plugins/ykc/schema/001_records.sql: the YKC plugin's own table (plugin ABI 2 migrations,
-- applied by `evcsd --migrate` and recorded as plugin 'ykc' in plugin_schema_version).
--
-- ykc_records: the evidence of every YKC 0x3B transaction record (shared/docs/ykc.md 1.6). The
-- core keeps the session (charging_sessions: times, meter readings, energies, the bill, the
-- pile's total, the close digest); this table keeps what only YKC has: the frame body as it
-- arrived and the 0x3B fields with no neutral column. The row is written by the core in the
-- same transaction as the session close (evidence_sql), before the pile gets its 0x40.
-- One row per distinct body of a trade number: digest is the SHA-256 of the body, the same
-- text the core stores as the session's close_digest. The row whose digest equals the
-- session's close_digest is the close the session was billed from; a resend with another body
-- (a conflict: the core keeps the first close and audits the resend in record_conflicts) gets
-- its own row, written by the plugin after the core's answer. Units as in the core: prices
-- 0.00001 yuan/kWh, energies 0.0001 kWh, amounts 0.00001 yuan (the wire's 0.0001 yuan x 10).
CREATE TABLE ykc_records (
  id                  BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id           BIGINT NOT NULL,
  session_id          BIGINT NULL COMMENT 'the charging session the record closed',
  pile_id             BIGINT NOT NULL,
  trade_no            CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  gun_no              TINYINT UNSIGNED NOT NULL,
  digest              CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL
                        COMMENT 'SHA-256 of the body, lower-case hex',
  raw_hex             VARCHAR(1024) CHARACTER SET ascii NOT NULL COMMENT 'the 0x3B body as received',
  sharp_price         BIGINT NOT NULL COMMENT 'the pile''s unit price per period',
  sharp_loss_kwh      BIGINT NOT NULL COMMENT 'energy with line loss per period',
  sharp_pile_amount   BIGINT NOT NULL COMMENT 'the pile''s amount per period',
  peak_price          BIGINT NOT NULL,
  peak_loss_kwh       BIGINT NOT NULL,
  peak_pile_amount    BIGINT NOT NULL,
  flat_price          BIGINT NOT NULL,
  flat_loss_kwh       BIGINT NOT NULL,
  flat_pile_amount    BIGINT NOT NULL,
  valley_price        BIGINT NOT NULL,
  valley_loss_kwh     BIGINT NOT NULL,
  valley_pile_amount  BIGINT NOT NULL,
  trade_flag          TINYINT UNSIGNED NOT NULL COMMENT '1 app, 2 card, 4 offline card, 5 VIN',
  trade_time_ms       BIGINT NULL,
  stop_reason         SMALLINT UNSIGNED NOT NULL,
  vin                 VARCHAR(17) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'normal order',
  physical_card       CHAR(16) CHARACTER SET ascii NOT NULL DEFAULT '0000000000000000',
  peer                VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'the connection it came over',
  received_ms         BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_ykc_records_body (pile_id, trade_no, digest),
  KEY ix_ykc_records_session (tenant_id, session_id),
  KEY ix_ykc_records_received (tenant_id, received_ms),
  CONSTRAINT fk_ykc_records_pile FOREIGN KEY (tenant_id, pile_id) REFERENCES piles (tenant_id, id),
  CONSTRAINT fk_ykc_records_session FOREIGN KEY (tenant_id, session_id)
    REFERENCES charging_sessions (tenant_id, id),
  CONSTRAINT ck_ykc_records_trade CHECK (trade_no REGEXP '^[0-9A-F]{32}$'),
  CONSTRAINT ck_ykc_records_digest CHECK (digest REGEXP '^[0-9a-f]{64}$')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
