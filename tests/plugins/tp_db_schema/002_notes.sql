-- 002_notes (test plugin tp_db): a second table referring to the first, and the adoption of a
-- legacy table under the plugin's prefix (RENAME TABLE IF EXISTS old TO tp_db_...).
CREATE TABLE tp_db_notes (
  id         BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id  BIGINT NOT NULL,
  item_id    BIGINT NOT NULL,
  body       TEXT NOT NULL,
  PRIMARY KEY (id),
  KEY ix_tp_db_notes_item (tenant_id, item_id),
  CONSTRAINT fk_tp_db_notes_item FOREIGN KEY (item_id) REFERENCES tp_db_items (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
RENAME TABLE IF EXISTS tpdb_legacy TO tp_db_legacy;
