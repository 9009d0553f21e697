-- tp_proto's own table (tests/plugins/tp_proto.c): the raw evidence of each close, written by
-- the core inside the close's transaction. Created by tests/test_session.c and the records
-- benchmark until plugin migrations apply it.
CREATE TABLE tp_proto_evidence (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  tenant_id   BIGINT NOT NULL,
  session_id  BIGINT NOT NULL,
  trade_no    VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  raw         VARCHAR(255) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_tp_evidence_session (tenant_id, session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
