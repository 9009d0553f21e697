-- 001_notes: the example plugin's own table (plugins/example/notes.c).
-- A plugin's tables are named <plugin name>_... and are created only by its migrations, which
-- `evcsd --migrate` applies after the core's (recorded in plugin_schema_version). Rows are per
-- tenant: every statement the plugin runs on them carries `tenant_id = ?`, bound by the core.
CREATE TABLE example_notes (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id   BIGINT NOT NULL,
  body        VARCHAR(500) NOT NULL,
  created_by  VARCHAR(64) NOT NULL COMMENT 'the request''s actor: user:NAME or bootstrap',
  created_ms  BIGINT NOT NULL,
  PRIMARY KEY (id),
  KEY ix_example_notes_tenant (tenant_id, id),
  CONSTRAINT fk_example_notes_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
