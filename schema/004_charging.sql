-- 004_charging: charging sessions (orders), YKC transaction records and their conflicts, meter
-- samples (time series), alarms.

-- One row per charging session. trade_no is the 32-digit YKC transaction serial, unique per
-- pile (the pile generates it offline with the same rule, so only (pile, trade_no) is a key).
-- Energy 0.0001 kWh, money 0.00001 yuan. The per-period figures are the platform's own
-- computation; pile_amount is what the pile reported (0x3B total, converted to 0.00001 yuan).
-- state transitions are checked by trg_sessions_state (schema/README.md draws them).
CREATE TABLE charging_sessions (
  id                 BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id          BIGINT NOT NULL,
  station_id         BIGINT NULL,
  pile_id            BIGINT NOT NULL,
  connector_id       BIGINT NULL,
  gun_no             TINYINT UNSIGNED NOT NULL,
  trade_no           CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state              ENUM('pending','starting','charging','stopping','finished','failed','abnormal') NOT NULL DEFAULT 'pending',
  start_mode         ENUM('app','card','offline_card','vin','operator','partner') NOT NULL COMMENT 'who started it (YKC trade_flag / API path)',
  driver_id          BIGINT NULL,
  card_id            BIGINT NULL,
  physical_card      CHAR(16) CHARACTER SET ascii NULL,
  vin                CHAR(17) CHARACTER SET ascii NULL,
  operator_user_id   BIGINT NULL COMMENT 'api_users.id when started from the operator API',
  partner_id         BIGINT NULL COMMENT 'CEC partner that started it',
  partner_seq        VARCHAR(32) CHARACTER SET ascii NULL COMMENT 'CEC StartChargeSeq',
  tariff_id          BIGINT NULL COMMENT 'the exact tariff version used for the bill',
  requested_ms       BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  start_ms           BIGINT NULL,
  end_ms             BIGINT NULL,
  start_fail_reason  SMALLINT NULL COMMENT 'YKC 0x33 failure reason',
  stop_reason        SMALLINT NULL COMMENT 'YKC stop reason code (ykc.md section 5)',
  stop_reason_text   VARCHAR(128) NOT NULL DEFAULT '',
  stop_requested_by  VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'driver, operator:NAME, partner, pile, balance',
  meter_start        BIGINT NULL,
  meter_stop         BIGINT NULL,
  sharp_kwh          BIGINT NOT NULL DEFAULT 0,
  sharp_amount       BIGINT NOT NULL DEFAULT 0,
  peak_kwh           BIGINT NOT NULL DEFAULT 0,
  peak_amount        BIGINT NOT NULL DEFAULT 0,
  flat_kwh           BIGINT NOT NULL DEFAULT 0,
  flat_amount        BIGINT NOT NULL DEFAULT 0,
  valley_kwh         BIGINT NOT NULL DEFAULT 0,
  valley_amount      BIGINT NOT NULL DEFAULT 0,
  total_kwh          BIGINT NOT NULL DEFAULT 0,
  elec_amount        BIGINT NOT NULL DEFAULT 0 COMMENT 'electricity part of total_amount',
  service_amount     BIGINT NOT NULL DEFAULT 0 COMMENT 'service part of total_amount',
  total_amount       BIGINT NOT NULL DEFAULT 0 COMMENT 'platform-computed bill total',
  pile_amount        BIGINT NULL COMMENT 'pile-reported total',
  bill               JSON NULL COMMENT 'platform bill line items (from the tariff script)',
  amount_mismatch    TINYINT(1) NOT NULL DEFAULT 0,
  live_kwh           BIGINT NOT NULL DEFAULT 0 COMMENT 'last 0x13 figures while charging',
  live_amount        BIGINT NOT NULL DEFAULT 0,
  live_soc           TINYINT UNSIGNED NULL,
  live_ms            BIGINT NULL,
  settle_state       ENUM('unsettled','settled','failed','free') NOT NULL DEFAULT 'unsettled',
  created_ms         BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  updated_ms         BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_sessions_trade (pile_id, trade_no),
  UNIQUE KEY uk_sessions_tenant_id (tenant_id, id),
  KEY ix_sessions_state (tenant_id, state),
  KEY ix_sessions_start (tenant_id, requested_ms),
  KEY ix_sessions_driver (tenant_id, driver_id, requested_ms),
  KEY ix_sessions_gun (pile_id, gun_no, state),
  CONSTRAINT fk_sessions_pile FOREIGN KEY (tenant_id, pile_id) REFERENCES piles (tenant_id, id),
  CONSTRAINT fk_sessions_station FOREIGN KEY (tenant_id, station_id) REFERENCES stations (tenant_id, id),
  CONSTRAINT fk_sessions_connector FOREIGN KEY (tenant_id, connector_id) REFERENCES connectors (tenant_id, id),
  CONSTRAINT fk_sessions_driver FOREIGN KEY (tenant_id, driver_id) REFERENCES drivers (tenant_id, id),
  CONSTRAINT fk_sessions_card FOREIGN KEY (tenant_id, card_id) REFERENCES rfid_cards (tenant_id, id),
  CONSTRAINT fk_sessions_tariff FOREIGN KEY (tenant_id, tariff_id) REFERENCES tariffs (tenant_id, id),
  CONSTRAINT ck_sessions_trade CHECK (trade_no REGEXP '^[0-9A-F]{32}$'),
  CONSTRAINT ck_sessions_energy CHECK (sharp_kwh >= 0 AND peak_kwh >= 0 AND flat_kwh >= 0 AND valley_kwh >= 0 AND total_kwh >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Allowed transitions; anything else (and leaving 'finished') is an error. 'failed' and
-- 'abnormal' may still become 'finished' because a pile owes a record after every start attempt
-- it acted on, and that late record settles the session.
CREATE TRIGGER trg_sessions_state BEFORE UPDATE ON charging_sessions FOR EACH ROW
BEGIN
  IF NEW.state <> OLD.state AND NOT (
       (OLD.state = 'pending'  AND NEW.state IN ('starting','failed','abnormal')) OR
       (OLD.state = 'starting' AND NEW.state IN ('charging','stopping','finished','failed','abnormal')) OR
       (OLD.state = 'charging' AND NEW.state IN ('stopping','finished','abnormal')) OR
       (OLD.state = 'stopping' AND NEW.state IN ('finished','abnormal')) OR
       (OLD.state IN ('failed','abnormal') AND NEW.state = 'finished')) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'charging_sessions: state transition not allowed';
  END IF;
  SET NEW.updated_ms = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED);
END;

-- The first copy of each YKC 0x3B record, stored before 0x40 is sent (ykc.md 1.6). Column names
-- are the canonical decoder names; prices 0.00001 yuan/kWh, energies 0.0001 kWh, amounts
-- converted from the wire's 0.0001 yuan to 0.00001 yuan (x10, exact). raw_hex is the frame body.
CREATE TABLE transaction_records (
  id                BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id         BIGINT NOT NULL,
  pile_id           BIGINT NOT NULL,
  session_id        BIGINT NULL,
  trade_no          CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  gun_no            TINYINT UNSIGNED NOT NULL,
  start_ms          BIGINT NULL,
  end_ms            BIGINT NULL,
  sharp_price       BIGINT NOT NULL,
  sharp_kwh         BIGINT NOT NULL,
  sharp_loss_kwh    BIGINT NOT NULL,
  sharp_amount      BIGINT NOT NULL,
  peak_price        BIGINT NOT NULL,
  peak_kwh          BIGINT NOT NULL,
  peak_loss_kwh     BIGINT NOT NULL,
  peak_amount       BIGINT NOT NULL,
  flat_price        BIGINT NOT NULL,
  flat_kwh          BIGINT NOT NULL,
  flat_loss_kwh     BIGINT NOT NULL,
  flat_amount       BIGINT NOT NULL,
  valley_price      BIGINT NOT NULL,
  valley_kwh        BIGINT NOT NULL,
  valley_loss_kwh   BIGINT NOT NULL,
  valley_amount     BIGINT NOT NULL,
  meter_start_kwh   BIGINT NOT NULL,
  meter_stop_kwh    BIGINT NOT NULL,
  total_kwh         BIGINT NOT NULL,
  total_loss_kwh    BIGINT NOT NULL,
  total_amount      BIGINT NOT NULL,
  vin               VARCHAR(17) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'vin_text',
  trade_flag        TINYINT UNSIGNED NOT NULL COMMENT '1 app, 2 card, 4 offline card, 5 VIN',
  trade_time_ms     BIGINT NULL,
  stop_reason       SMALLINT UNSIGNED NOT NULL,
  physical_card     CHAR(16) CHARACTER SET ascii NOT NULL DEFAULT '0000000000000000',
  raw_hex           VARCHAR(1024) CHARACTER SET ascii NOT NULL,
  received_ms       BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  peer              VARCHAR(64) NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  UNIQUE KEY uk_records_trade (pile_id, trade_no),
  UNIQUE KEY uk_records_tenant_id (tenant_id, id),
  KEY ix_records_session (tenant_id, session_id),
  KEY ix_records_received (tenant_id, received_ms),
  CONSTRAINT fk_records_pile FOREIGN KEY (tenant_id, pile_id) REFERENCES piles (tenant_id, id),
  CONSTRAINT fk_records_session FOREIGN KEY (tenant_id, session_id) REFERENCES charging_sessions (tenant_id, id),
  CONSTRAINT ck_records_trade CHECK (trade_no REGEXP '^[0-9A-F]{32}$')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A resent record that differs from the stored copy: the stored copy stays, the new one lands
-- here, and an alarm is raised (ykc.md 1.6).
CREATE TABLE record_conflicts (
  id           BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id    BIGINT NOT NULL,
  record_id    BIGINT NOT NULL COMMENT 'the stored transaction_records row',
  pile_id      BIGINT NOT NULL,
  trade_no     CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  raw_hex      VARCHAR(1024) CHARACTER SET ascii NOT NULL COMMENT 'the differing resend',
  diff         JSON NOT NULL COMMENT '{"field": [stored, received], ...}',
  alarm_id     BIGINT NULL,
  peer         VARCHAR(64) NOT NULL DEFAULT '',
  received_ms  BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  KEY ix_conflicts_record (tenant_id, record_id),
  KEY ix_conflicts_trade (pile_id, trade_no),
  CONSTRAINT fk_conflicts_record FOREIGN KEY (tenant_id, record_id) REFERENCES transaction_records (tenant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Meter samples from 0x13 during a session: the big table (about 10k rows/s at 1 M piles).
-- Narrow rows, clustered on (session_id, ts_ms) so one session's curve is one range read, and
-- RANGE-partitioned by month on ts_ms so retention is DROP PARTITION instead of DELETE.
-- No tenant_id and no foreign keys (InnoDB does not allow them on partitioned tables): access
-- is always through charging_sessions, which carries the tenant. Units as in the 0x13 frame
-- (voltage 0.1 V, current 0.1 A, temperature degC) except amount, in 0.00001 yuan.
CREATE TABLE meter_samples (
  session_id       BIGINT NOT NULL,
  ts_ms            BIGINT NOT NULL,
  kwh              INT UNSIGNED NOT NULL COMMENT '0.0001 kWh so far',
  amount           BIGINT NOT NULL COMMENT '0.00001 yuan so far, as reported by the pile',
  voltage_dv       SMALLINT UNSIGNED NOT NULL,
  current_da       SMALLINT UNSIGNED NOT NULL,
  soc              TINYINT UNSIGNED NOT NULL,
  gun_temp_c       SMALLINT NOT NULL,
  batt_max_temp_c  SMALLINT NOT NULL,
  remaining_min    SMALLINT UNSIGNED NOT NULL,
  PRIMARY KEY (session_id, ts_ms)
) ENGINE=InnoDB DEFAULT CHARSET=ascii
PARTITION BY RANGE (ts_ms) (
  PARTITION p_old VALUES LESS THAN (1767225600000),
  PARTITION p_future VALUES LESS THAN MAXVALUE
);

-- Create monthly partitions pYYYYMM (UTC) from the current month to months_ahead months ahead,
-- split off p_future. Idempotent; run daily by the daemon (or cron). Retention:
--   ALTER TABLE meter_samples DROP PARTITION p202601;
CREATE PROCEDURE evcs_meter_partitions_ensure(IN months_ahead INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE m DATE;
  DECLARE pname VARCHAR(16);
  DECLARE bound BIGINT;
  DECLARE maxb BIGINT;
  WHILE i <= months_ahead DO
    SET m = DATE_FORMAT(UTC_DATE() + INTERVAL i MONTH, '%Y-%m-01');
    SET pname = CONCAT('p', DATE_FORMAT(m, '%Y%m'));
    SET bound = TIMESTAMPDIFF(SECOND, '1970-01-01', m + INTERVAL 1 MONTH) * 1000;
    SELECT MAX(CAST(PARTITION_DESCRIPTION AS UNSIGNED)) INTO maxb FROM information_schema.PARTITIONS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'meter_samples' AND PARTITION_DESCRIPTION <> 'MAXVALUE';
    IF bound > IFNULL(maxb, 0) THEN
      SET @evcs_part_sql = CONCAT('ALTER TABLE meter_samples REORGANIZE PARTITION p_future INTO (PARTITION ',
        pname, ' VALUES LESS THAN (', bound, '), PARTITION p_future VALUES LESS THAN MAXVALUE)');
      PREPARE evcs_part_stmt FROM @evcs_part_sql;
      EXECUTE evcs_part_stmt;
      DEALLOCATE PREPARE evcs_part_stmt;
    END IF;
    SET i = i + 1;
  END WHILE;
END;

CALL evcs_meter_partitions_ensure(3);

-- Alarms. open_key is unique while an alarm is not cleared, so the same (pile, gun, code) is
-- raised once and re-raising it is a duplicate-key no-op until it is cleared.
CREATE TABLE alarms (
  id            BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id     BIGINT NOT NULL,
  pile_id       BIGINT NULL,
  gun_no        TINYINT UNSIGNED NOT NULL DEFAULT 0 COMMENT '0 = whole pile / not gun-specific',
  session_id    BIGINT NULL,
  code          VARCHAR(64) CHARACTER SET ascii NOT NULL COMMENT 'e.g. ykc.hw_fault.0x0001, record.conflict, script:NAME',
  severity      ENUM('info','warning','major','critical') NOT NULL DEFAULT 'warning',
  message       VARCHAR(512) NOT NULL DEFAULT '',
  details       JSON NULL,
  source        VARCHAR(32) NOT NULL DEFAULT '' COMMENT 'ykc, core, script, cec',
  state         ENUM('raised','acknowledged','cleared') NOT NULL DEFAULT 'raised',
  open_key      VARCHAR(100) CHARACTER SET ascii AS
                (IF(state <> 'cleared', CONCAT(IFNULL(pile_id, 0), ':', gun_no, ':', code), NULL)) PERSISTENT,
  raised_ms     BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  acked_ms      BIGINT NULL,
  acked_by      BIGINT NULL COMMENT 'api_users.id',
  cleared_ms    BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_alarms_open (tenant_id, open_key),
  KEY ix_alarms_state (tenant_id, state, raised_ms),
  KEY ix_alarms_pile (tenant_id, pile_id, raised_ms),
  CONSTRAINT fk_alarms_pile FOREIGN KEY (tenant_id, pile_id) REFERENCES piles (tenant_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
