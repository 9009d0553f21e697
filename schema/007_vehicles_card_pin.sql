-- 007_vehicles_card_pin: a vehicle registry for VIN starts (YKC 0x31/0xA1 start_mode 3) and an
-- optional PIN on RFID cards for starts where the pile asks for a password (need_password).

-- A VIN belongs to one driver per tenant; a VIN start charges that driver's wallet. The same
-- vehicle may be registered by two tenants (each runs its own driver base).
CREATE TABLE vehicles (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id   BIGINT NOT NULL,
  driver_id   BIGINT NOT NULL,
  vin         CHAR(17) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'normal order (not the reversed wire order)',
  status      ENUM('active','blocked') NOT NULL DEFAULT 'active',
  created_ms  BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_vehicles_vin (tenant_id, vin),
  UNIQUE KEY uk_vehicles_tenant_id (tenant_id, id),
  KEY ix_vehicles_driver (tenant_id, driver_id),
  CONSTRAINT fk_vehicles_driver FOREIGN KEY (tenant_id, driver_id) REFERENCES drivers (tenant_id, id),
  -- ISO 3779: 17 characters, digits and capitals without I, O and Q
  CONSTRAINT ck_vehicles_vin CHECK (vin REGEXP '^[A-HJ-NPR-Z0-9]{17}$')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Only the digest is kept: the pile sends an MD5 form of the PIN, never the PIN (ykc.md §3.7).
ALTER TABLE rfid_cards ADD COLUMN pin_md5 CHAR(32) CHARACTER SET ascii NULL
  COMMENT 'lower-case hex MD5 of the card PIN; NULL = no PIN' AFTER offline,
  ADD CONSTRAINT ck_cards_pin CHECK (pin_md5 COLLATE ascii_bin REGEXP '^[0-9a-f]{32}$');
