-- 003_drivers_money: mini-programs, drivers and their identities, wallets with an append-only
-- ledger, payments and refunds.

-- WeChat (or Alipay) mini-programs; a tenant may run several.
CREATE TABLE mini_programs (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id   BIGINT NOT NULL,
  platform    ENUM('wechat','alipay') NOT NULL DEFAULT 'wechat',
  appid       VARCHAR(32) CHARACTER SET ascii NOT NULL,
  name        VARCHAR(64) NOT NULL DEFAULT '',
  mch_id      VARCHAR(32) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'payment merchant id',
  config      JSON NOT NULL DEFAULT '{}' COMMENT 'secrets are referenced (key file / env name), not stored here',
  status      ENUM('active','disabled') NOT NULL DEFAULT 'active',
  created_ms  BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_mini_programs_appid (platform, appid),
  UNIQUE KEY uk_mini_programs_tenant_id (tenant_id, id),
  CONSTRAINT fk_mini_programs_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE drivers (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id   BIGINT NOT NULL,
  phone       VARCHAR(20) CHARACTER SET ascii NULL,
  name        VARCHAR(64) NOT NULL DEFAULT '',
  status      ENUM('active','blocked') NOT NULL DEFAULT 'active',
  created_ms  BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_drivers_phone (tenant_id, phone),
  UNIQUE KEY uk_drivers_tenant_id (tenant_id, id),
  CONSTRAINT fk_drivers_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- An openid is per mini-program, so one driver has one row per mini-program used.
CREATE TABLE driver_openids (
  id               BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id        BIGINT NOT NULL,
  driver_id        BIGINT NOT NULL,
  mini_program_id  BIGINT NOT NULL,
  openid           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  unionid          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_ms       BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_openids_openid (mini_program_id, openid),
  KEY ix_openids_driver (tenant_id, driver_id),
  KEY ix_openids_unionid (tenant_id, unionid),
  CONSTRAINT fk_openids_driver FOREIGN KEY (tenant_id, driver_id) REFERENCES drivers (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT fk_openids_mp FOREIGN KEY (tenant_id, mini_program_id) REFERENCES mini_programs (tenant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- RFID cards: logical number printed on the card (16 digits, YKC BCD), physical number as the
-- 16 hex digits read from the chip (YKC 0x3B physical_card, kept in wire order).
CREATE TABLE rfid_cards (
  id           BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id    BIGINT NOT NULL,
  driver_id    BIGINT NULL,
  logical_no   CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  physical_no  CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status       ENUM('active','blocked','lost') NOT NULL DEFAULT 'active',
  offline      TINYINT(1) NOT NULL DEFAULT 0 COMMENT 'synced to piles for offline charging (0x44)',
  created_ms   BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_cards_logical (tenant_id, logical_no),
  UNIQUE KEY uk_cards_physical (tenant_id, physical_no),
  UNIQUE KEY uk_cards_tenant_id (tenant_id, id),
  KEY ix_cards_driver (tenant_id, driver_id),
  CONSTRAINT fk_cards_driver FOREIGN KEY (tenant_id, driver_id) REFERENCES drivers (tenant_id, id),
  CONSTRAINT ck_cards_physical CHECK (physical_no REGEXP '^[0-9A-F]{16}$')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Wallets. balance is a cache of SUM(wallet_ledger.amount) that only the ledger trigger may
-- change (see trg_wallets_guard); a wallet starts at 0. credit_limit allows a bounded overdraft
-- (a session may cost more than the balance it started with).
CREATE TABLE wallets (
  id            BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id     BIGINT NOT NULL,
  driver_id     BIGINT NOT NULL,
  balance       BIGINT NOT NULL DEFAULT 0 COMMENT '0.00001 yuan',
  credit_limit  BIGINT NOT NULL DEFAULT 0 COMMENT 'balance may go down to -credit_limit',
  status        ENUM('active','frozen') NOT NULL DEFAULT 'active',
  created_ms    BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  updated_ms    BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_wallets_driver (tenant_id, driver_id),
  UNIQUE KEY uk_wallets_tenant_id (tenant_id, id),
  CONSTRAINT fk_wallets_driver FOREIGN KEY (tenant_id, driver_id) REFERENCES drivers (tenant_id, id),
  CONSTRAINT ck_wallets_credit CHECK (credit_limit >= 0),
  CONSTRAINT ck_wallets_balance CHECK (balance >= -credit_limit)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Append-only ledger: every balance change is one row. The BEFORE INSERT trigger locks the
-- wallet row, computes balance_after = balance + amount, and writes it to the wallet, so
-- wallets.balance = SUM(amount) and each balance_after = previous balance_after + amount, by
-- construction. idem_key makes a charge for a resent transaction record a no-op (duplicate key).
CREATE TABLE wallet_ledger (
  id             BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id      BIGINT NOT NULL,
  wallet_id      BIGINT NOT NULL,
  amount         BIGINT NOT NULL COMMENT 'signed, 0.00001 yuan; + credit, - debit',
  balance_after  BIGINT NOT NULL DEFAULT 0 COMMENT 'set by the trigger; any value given is replaced',
  kind           ENUM('topup','charge','refund','adjust','gift') NOT NULL,
  ref_type       VARCHAR(16) NOT NULL DEFAULT '' COMMENT 'session, payment, refund, user',
  ref_id         BIGINT NULL,
  idem_key       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  note           VARCHAR(255) NOT NULL DEFAULT '',
  created_ms     BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_ledger_idem (wallet_id, idem_key),
  KEY ix_ledger_wallet (tenant_id, wallet_id, id),
  CONSTRAINT fk_ledger_wallet FOREIGN KEY (tenant_id, wallet_id) REFERENCES wallets (tenant_id, id),
  CONSTRAINT ck_ledger_amount CHECK (amount <> 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TRIGGER trg_wallets_new BEFORE INSERT ON wallets FOR EACH ROW
BEGIN
  IF NEW.balance <> 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'wallets: a wallet starts at 0; credit it through wallet_ledger';
  END IF;
END;

-- The ledger trigger announces the one balance it is about to write in session variables; any
-- other balance change is refused. A stale announcement can only re-allow that same value.
CREATE TRIGGER trg_wallets_guard BEFORE UPDATE ON wallets FOR EACH ROW
BEGIN
  IF NEW.balance <> OLD.balance AND NOT (NEW.id <=> @evcs_ledger_wallet AND NEW.balance <=> @evcs_ledger_balance) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'wallets.balance changes only through wallet_ledger';
  END IF;
END;

CREATE TRIGGER trg_ledger_apply BEFORE INSERT ON wallet_ledger FOR EACH ROW
BEGIN
  DECLARE cur BIGINT;
  SELECT balance INTO cur FROM wallets WHERE id = NEW.wallet_id AND tenant_id = NEW.tenant_id FOR UPDATE;
  IF cur IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'wallet_ledger: no such wallet in this tenant';
  END IF;
  SET NEW.balance_after = cur + NEW.amount;
  SET @evcs_ledger_wallet = NEW.wallet_id, @evcs_ledger_balance = NEW.balance_after;
  UPDATE wallets SET balance = NEW.balance_after,
    updated_ms = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) WHERE id = NEW.wallet_id;
  SET @evcs_ledger_wallet = NULL, @evcs_ledger_balance = NULL;
END;

CREATE TRIGGER trg_ledger_no_update BEFORE UPDATE ON wallet_ledger FOR EACH ROW
BEGIN
  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'wallet_ledger is append-only';
END;

CREATE TRIGGER trg_ledger_no_delete BEFORE DELETE ON wallet_ledger FOR EACH ROW
BEGIN
  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'wallet_ledger is append-only';
END;

-- Payments (top-ups or direct session payments). out_trade_no is our order number sent to the
-- payment provider; unique installation-wide because notifications arrive without a tenant.
CREATE TABLE payments (
  id               BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id        BIGINT NOT NULL,
  driver_id        BIGINT NULL,
  wallet_id        BIGINT NULL,
  mini_program_id  BIGINT NULL,
  session_id       BIGINT NULL,
  channel          ENUM('wechat','alipay','manual') NOT NULL,
  purpose          ENUM('topup','session') NOT NULL DEFAULT 'topup',
  out_trade_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  provider_txn_id  VARCHAR(64) CHARACTER SET ascii NULL COMMENT 'provider transaction id',
  amount           BIGINT NOT NULL COMMENT '0.00001 yuan',
  refunded_amount  BIGINT NOT NULL DEFAULT 0,
  state            ENUM('created','paid','closed','failed','refunded','partially_refunded') NOT NULL DEFAULT 'created',
  notify_raw       MEDIUMTEXT NULL COMMENT 'last provider notification, verbatim',
  created_ms       BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  paid_ms          BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_payments_out_trade_no (out_trade_no),
  UNIQUE KEY uk_payments_tenant_id (tenant_id, id),
  KEY ix_payments_driver (tenant_id, driver_id, created_ms),
  CONSTRAINT fk_payments_driver FOREIGN KEY (tenant_id, driver_id) REFERENCES drivers (tenant_id, id),
  CONSTRAINT fk_payments_wallet FOREIGN KEY (tenant_id, wallet_id) REFERENCES wallets (tenant_id, id),
  CONSTRAINT fk_payments_mp FOREIGN KEY (tenant_id, mini_program_id) REFERENCES mini_programs (tenant_id, id),
  CONSTRAINT ck_payments_amount CHECK (amount > 0 AND refunded_amount BETWEEN 0 AND amount)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE refunds (
  id                BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id         BIGINT NOT NULL,
  payment_id        BIGINT NOT NULL,
  out_refund_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  provider_refund_id VARCHAR(64) CHARACTER SET ascii NULL,
  amount            BIGINT NOT NULL,
  reason            VARCHAR(255) NOT NULL DEFAULT '',
  state             ENUM('pending','success','failed','closed') NOT NULL DEFAULT 'pending',
  requested_by      BIGINT NULL COMMENT 'api_users.id',
  created_ms        BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  done_ms           BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_refunds_out_refund_no (out_refund_no),
  KEY ix_refunds_payment (tenant_id, payment_id),
  CONSTRAINT fk_refunds_payment FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id),
  CONSTRAINT ck_refunds_amount CHECK (amount > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
