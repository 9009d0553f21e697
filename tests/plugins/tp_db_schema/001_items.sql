-- 001_items (test plugin tp_db): a tenant-scoped table of the plugin's own.
CREATE TABLE tp_db_items (
  id         BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id  BIGINT NOT NULL,
  label      VARCHAR(64) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_tp_db_items_tenant (tenant_id, id),
  CONSTRAINT fk_tp_db_items_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
