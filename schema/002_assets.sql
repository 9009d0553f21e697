-- 002_assets: stations, tenant scripts, tariffs, piles, connectors, unclaimed piles.

CREATE TABLE stations (
  id             BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id      BIGINT NOT NULL,
  name           VARCHAR(128) NOT NULL,
  address        VARCHAR(255) NOT NULL DEFAULT '',
  area_code      CHAR(6) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'GB/T 2260 administrative code (CEC AreaCode)',
  lat_e6         INT NULL COMMENT 'latitude in micro-degrees',
  lng_e6         INT NULL COMMENT 'longitude in micro-degrees',
  coord_system   ENUM('gcj02','wgs84','bd09') NOT NULL DEFAULT 'gcj02',
  station_type   SMALLINT NOT NULL DEFAULT 1 COMMENT 'CEC StationType (1 public, 50 private, ...)',
  status         ENUM('building','open','closed','maintenance') NOT NULL DEFAULT 'open',
  opening_hours  VARCHAR(255) NOT NULL DEFAULT '' COMMENT 'free text shown to drivers, e.g. 00:00-24:00',
  facilities     JSON NOT NULL DEFAULT '[]' COMMENT 'e.g. ["parking","toilet","canopy"]',
  photos         JSON NOT NULL DEFAULT '[]' COMMENT 'array of image URLs',
  service_tel    VARCHAR(32) NOT NULL DEFAULT '',
  remark         VARCHAR(512) NOT NULL DEFAULT '',
  created_ms     BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  updated_ms     BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_stations_tenant_id (tenant_id, id),
  CONSTRAINT fk_stations_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id),
  CONSTRAINT ck_stations_lat CHECK (lat_e6 IS NULL OR lat_e6 BETWEEN -90000000 AND 90000000),
  CONSTRAINT ck_stations_lng CHECK (lng_e6 IS NULL OR lng_e6 BETWEEN -180000000 AND 180000000)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Tenant Lua scripts. Each edit is a new version row; at most one version per (tenant, kind,
-- name) is active (enforced by the unique generated column active_name).
CREATE TABLE tenant_scripts (
  id           BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id    BIGINT NOT NULL,
  kind         ENUM('tariff','alarm') NOT NULL,
  name         VARCHAR(64) NOT NULL,
  version      INT NOT NULL,
  source       MEDIUMTEXT NOT NULL,
  sha256       CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  active       TINYINT(1) NOT NULL DEFAULT 0,
  active_name  VARCHAR(64) AS (IF(active, name, NULL)) PERSISTENT,
  created_by   BIGINT NULL COMMENT 'api_users.id',
  created_ms   BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_scripts_tenant_id (tenant_id, id),
  UNIQUE KEY uk_scripts_version (tenant_id, kind, name, version),
  UNIQUE KEY uk_scripts_active (tenant_id, kind, active_name),
  CONSTRAINT fk_scripts_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Tariffs. A row is immutable once a session references it: a change is a new row with the
-- next version and its own 4-digit YKC billing-model code, so a pile's 0x05 check (same code?)
-- notices the change and every session keeps the exact prices it was billed with.
-- Rates in 0.00001 yuan/kWh (the YKC wire unit). slots: 48 characters, one per half hour from
-- 00:00, each '0' sharp (尖), '1' peak (峰), '2' flat (平), '3' valley (谷).
CREATE TABLE tariffs (
  id                   BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id            BIGINT NOT NULL,
  name                 VARCHAR(64) NOT NULL COMMENT 'groups the versions of one tariff',
  version              INT NOT NULL DEFAULT 1,
  model                CHAR(4) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'YKC billing-model code',
  sharp_elec_rate      BIGINT NOT NULL,
  sharp_service_rate   BIGINT NOT NULL,
  peak_elec_rate       BIGINT NOT NULL,
  peak_service_rate    BIGINT NOT NULL,
  flat_elec_rate       BIGINT NOT NULL,
  flat_service_rate    BIGINT NOT NULL,
  valley_elec_rate     BIGINT NOT NULL,
  valley_service_rate  BIGINT NOT NULL,
  slots                CHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  script_id            BIGINT NULL COMMENT 'tenant_scripts row (kind tariff) that prices sessions; NULL = plain rates',
  state                ENUM('draft','active','retired') NOT NULL DEFAULT 'draft',
  created_by           BIGINT NULL,
  created_ms           BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tariffs_tenant_id (tenant_id, id),
  UNIQUE KEY uk_tariffs_version (tenant_id, name, version),
  UNIQUE KEY uk_tariffs_model (tenant_id, model),
  CONSTRAINT fk_tariffs_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id),
  CONSTRAINT fk_tariffs_script FOREIGN KEY (tenant_id, script_id) REFERENCES tenant_scripts (tenant_id, id),
  CONSTRAINT ck_tariffs_model CHECK (model REGEXP '^[0-9]{4}$' AND model <> '0000'),
  CONSTRAINT ck_tariffs_slots CHECK (slots REGEXP '^[0-3]{48}$'),
  CONSTRAINT ck_tariffs_rates CHECK (sharp_elec_rate >= 0 AND sharp_service_rate >= 0 AND
    peak_elec_rate >= 0 AND peak_service_rate >= 0 AND flat_elec_rate >= 0 AND
    flat_service_rate >= 0 AND valley_elec_rate >= 0 AND valley_service_rate >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Registered piles. serial is the 14-digit YKC pile number, unique across the installation
-- (it is what a pile logs in with, before any tenant is known).
CREATE TABLE piles (
  id                BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id         BIGINT NOT NULL,
  station_id        BIGINT NULL,
  serial            CHAR(14) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name              VARCHAR(64) NOT NULL DEFAULT '',
  protocol          VARCHAR(16) CHARACTER SET ascii NOT NULL DEFAULT 'ykc',
  protocol_version  TINYINT UNSIGNED NULL COMMENT 'as announced at login: 15 = 1.5, 16 = 1.6',
  vendor            VARCHAR(64) NOT NULL DEFAULT '',
  model             VARCHAR(64) NOT NULL DEFAULT '',
  rated_power_w     INT NOT NULL DEFAULT 0,
  current_type      ENUM('dc','ac') NOT NULL DEFAULT 'dc' COMMENT 'YKC pile_type 0 DC, 1 AC',
  gun_count         TINYINT UNSIGNED NOT NULL DEFAULT 1,
  program_version   VARCHAR(32) NOT NULL DEFAULT '' COMMENT 'firmware, from login',
  network           TINYINT UNSIGNED NULL COMMENT 'YKC: 0 SIM, 1 LAN, 2 WAN, 3 other',
  sim               VARCHAR(20) CHARACTER SET ascii NULL COMMENT 'ICCID; may contain A-F',
  carrier           TINYINT UNSIGNED NULL,
  tariff_id         BIGINT NULL COMMENT 'assigned tariff; NULL = tenant default (settings)',
  tariff_model_on_pile CHAR(4) CHARACTER SET ascii NULL COMMENT 'code the pile last reported (0x05)',
  status            ENUM('enabled','disabled') NOT NULL DEFAULT 'enabled',
  created_ms        BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  updated_ms        BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_piles_serial (serial),
  UNIQUE KEY uk_piles_tenant_id (tenant_id, id),
  KEY ix_piles_station (tenant_id, station_id),
  CONSTRAINT fk_piles_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id),
  CONSTRAINT fk_piles_station FOREIGN KEY (tenant_id, station_id) REFERENCES stations (tenant_id, id),
  CONSTRAINT fk_piles_tariff FOREIGN KEY (tenant_id, tariff_id) REFERENCES tariffs (tenant_id, id),
  CONSTRAINT ck_piles_serial CHECK (serial REGEXP '^[0-9A-F]{14}$'),
  CONSTRAINT ck_piles_guns CHECK (gun_count BETWEEN 1 AND 99)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Live presence of a pile, 1:1 with piles. Kept apart from piles because it is rewritten on
-- every login and in batches of last-seen updates (INSERT ... ON DUPLICATE KEY UPDATE), while
-- the piles row is cold configuration; the narrow hot row keeps those writes cheap.
CREATE TABLE pile_presence (
  pile_id        BIGINT NOT NULL,
  tenant_id      BIGINT NOT NULL,
  online         TINYINT(1) NOT NULL DEFAULT 0,
  last_seen_ms   BIGINT NOT NULL DEFAULT 0,
  last_login_ms  BIGINT NULL,
  peer           VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'ip:port of the current/last connection',
  node           VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'evcsd instance holding the connection',
  PRIMARY KEY (pile_id),
  KEY ix_presence_tenant (tenant_id, online),
  CONSTRAINT fk_presence_pile FOREIGN KEY (tenant_id, pile_id) REFERENCES piles (tenant_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Serials that tried to log in without being registered. Platform-level (no tenant yet); an
-- operator claims one by creating the pile, after which the row is deleted.
CREATE TABLE unclaimed_piles (
  serial         CHAR(14) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  first_seen_ms  BIGINT NOT NULL,
  last_seen_ms   BIGINT NOT NULL,
  peer           VARCHAR(64) NOT NULL DEFAULT '',
  attempts       BIGINT NOT NULL DEFAULT 1,
  login          JSON NULL COMMENT 'last decoded login fields (pile_type, gun_count, program_version, sim ...)',
  PRIMARY KEY (serial),
  KEY ix_unclaimed_last (last_seen_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Guns. gun_no is the YKC gun number (1-based). status mirrors the last 0x13:
-- 0 offline, 1 fault, 2 idle, 3 charging. fault_code is the 0x13 hw_fault bitmap.
CREATE TABLE connectors (
  id                  BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id           BIGINT NOT NULL,
  pile_id             BIGINT NOT NULL,
  gun_no              TINYINT UNSIGNED NOT NULL,
  connector_type      SMALLINT NOT NULL DEFAULT 4 COMMENT 'CEC ConnectorType: 1 home socket, 2 AC socket, 3 AC plug, 4 DC gun, ...',
  rated_power_w       INT NOT NULL DEFAULT 0,
  status              TINYINT UNSIGNED NOT NULL DEFAULT 0,
  plugged             TINYINT UNSIGNED NOT NULL DEFAULT 0,
  gun_returned        TINYINT UNSIGNED NOT NULL DEFAULT 2,
  fault_code          INT UNSIGNED NOT NULL DEFAULT 0,
  status_ms           BIGINT NOT NULL DEFAULT 0,
  current_session_id  BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_connectors_gun (pile_id, gun_no),
  UNIQUE KEY uk_connectors_tenant_id (tenant_id, id),
  CONSTRAINT fk_connectors_pile FOREIGN KEY (tenant_id, pile_id) REFERENCES piles (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT ck_connectors_gun CHECK (gun_no BETWEEN 1 AND 99),
  CONSTRAINT ck_connectors_status CHECK (status <= 3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
