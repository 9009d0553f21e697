-- 001_tenancy: tenants, API users and tokens, audit and login logs.
-- Conventions (schema/README.md): times are BIGINT unix milliseconds UTC (*_ms), money BIGINT
-- 0.00001 yuan, energy BIGINT 0.0001 kWh, ids BIGINT AUTO_INCREMENT, InnoDB, utf8mb4.
-- Tenant-owned rows carry tenant_id and every tenant-owned parent has UNIQUE (tenant_id, id) so
-- children can reference (tenant_id, parent_id) and a row can never point into another tenant.

CREATE TABLE tenants (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  name        VARCHAR(128) NOT NULL,
  status      ENUM('active','suspended','expired','deleted') NOT NULL DEFAULT 'active',
  expires_ms  BIGINT NULL COMMENT 'NULL = no expiry',
  plan        VARCHAR(32) NOT NULL DEFAULT 'default',
  max_piles   INT NOT NULL DEFAULT 0 COMMENT 'quota; 0 = unlimited',
  settings    JSON NOT NULL DEFAULT '{}' COMMENT 'tenant settings (timezone, brand, defaults)',
  created_ms  BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  updated_ms  BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenants_name (name),
  CONSTRAINT ck_tenants_quota CHECK (max_piles >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- API principals. A platform admin has no tenant; every other role belongs to exactly one.
CREATE TABLE api_users (
  id             BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id      BIGINT NULL,
  username       VARCHAR(64) NOT NULL COMMENT 'unique installation-wide: login needs no tenant',
  display_name   VARCHAR(128) NOT NULL DEFAULT '',
  role           ENUM('platform_admin','tenant_admin','operator','read_only') NOT NULL,
  password_hash  VARCHAR(255) NULL COMMENT 'self-describing KDF string, e.g. pbkdf2-sha256$iter$salt$hash; NULL = token-only',
  status         ENUM('active','disabled') NOT NULL DEFAULT 'active',
  created_ms     BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  last_login_ms  BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_api_users_username (username),
  UNIQUE KEY uk_api_users_tenant_id (tenant_id, id),
  CONSTRAINT fk_api_users_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id),
  CONSTRAINT ck_api_users_role_tenant CHECK ((role = 'platform_admin') = (tenant_id IS NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Bearer tokens. Only the SHA-256 (lower-case hex) of the token is stored; the clear token is
-- shown once at creation. tenant_id copies the owner's so token lookups need no join.
CREATE TABLE api_tokens (
  id            BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id     BIGINT NULL,
  user_id       BIGINT NOT NULL,
  token_sha256  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name          VARCHAR(64) NOT NULL DEFAULT '',
  role          ENUM('platform_admin','tenant_admin','operator','read_only') NULL
                COMMENT 'narrower role for this token; NULL = the user''s role',
  created_ms    BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  expires_ms    BIGINT NULL,
  last_used_ms  BIGINT NULL,
  revoked_ms    BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_api_tokens_hash (token_sha256),
  KEY ix_api_tokens_user (user_id),
  KEY ix_api_tokens_tenant (tenant_id),
  CONSTRAINT fk_api_tokens_user FOREIGN KEY (user_id) REFERENCES api_users (id) ON DELETE CASCADE,
  CONSTRAINT fk_api_tokens_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id),
  CONSTRAINT ck_api_tokens_hash CHECK (token_sha256 REGEXP '^[0-9a-f]{64}$')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Who changed what, from where. Append-only by convention; no foreign keys so that history
-- survives deletion of the actor or object.
CREATE TABLE audit_log (
  id           BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id    BIGINT NULL COMMENT 'NULL = platform-level action',
  user_id      BIGINT NULL,
  token_id     BIGINT NULL,
  actor        VARCHAR(64) NOT NULL COMMENT 'user:NAME, system, plugin:NAME, script:NAME',
  action       VARCHAR(64) NOT NULL COMMENT 'e.g. pile.create, tariff.activate, session.stop',
  object_type  VARCHAR(32) NOT NULL DEFAULT '',
  object_id    VARCHAR(64) NOT NULL DEFAULT '',
  peer         VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'client address ip:port',
  details      JSON NULL COMMENT 'before/after or request summary',
  ts_ms        BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  KEY ix_audit_tenant_ts (tenant_id, ts_ms),
  KEY ix_audit_object (object_type, object_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE login_log (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id   BIGINT NULL,
  user_id     BIGINT NULL,
  username    VARCHAR(64) NOT NULL COMMENT 'as typed, also for unknown users',
  result      ENUM('ok','bad_password','unknown_user','disabled','tenant_inactive','rate_limited') NOT NULL,
  peer        VARCHAR(64) NOT NULL DEFAULT '',
  user_agent  VARCHAR(255) NOT NULL DEFAULT '',
  ts_ms       BIGINT NOT NULL DEFAULT (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)),
  PRIMARY KEY (id),
  KEY ix_login_user_ts (username, ts_ms),
  KEY ix_login_tenant_ts (tenant_id, ts_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
