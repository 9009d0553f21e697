-- 008_plugin_schema: the version table of plugins' own schemas.
--
-- A plugin ships numbered migrations compiled into its descriptor (evcs_plugin_info_t.migrations);
-- `evcsd --migrate` applies them after the core's files, plugins in configuration order, and
-- records each here, per plugin. The core's own check reads only schema_version, so a removed
-- plugin leaves its rows (and its `<plugin>_...` tables) behind without affecting the core.
-- Written by the migration runner only: 'applying' before a migration's batch is sent, 'applied'
-- after; a leftover 'applying' row stops --migrate and the plugin's start-up check until an
-- operator repairs the database and deletes the row.
CREATE TABLE plugin_schema_version (
  plugin      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'descriptor name ([a-z0-9_]+)',
  version     INT NOT NULL,
  name        VARCHAR(128) NOT NULL COMMENT 'migration name, e.g. 001_partners',
  checksum    CHAR(64) CHARACTER SET ascii NOT NULL COMMENT 'sha256 of the SQL as applied',
  status      ENUM('applying','applied') NOT NULL,
  started_ms  BIGINT NOT NULL,
  applied_ms  BIGINT NULL,
  error       VARCHAR(512) NULL,
  PRIMARY KEY (plugin, version),
  CONSTRAINT ck_plugin_schema_version CHECK (version >= 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
