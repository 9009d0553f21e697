-- tp_proto's migration 1 (tests/plugins/tp_proto.c): its own table, the raw evidence of each
-- close, written by the core inside the close's transaction. Compiled into the plugin by
-- core/evcs-embed-sql and applied like every plugin migration (evcsd --migrate).
CREATE TABLE tp_proto_evidence (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id   BIGINT NOT NULL,
  session_id  BIGINT NOT NULL,
  trade_no    VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  raw         VARCHAR(255) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_tp_evidence_session (tenant_id, session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
