-- 002_steal (test plugin tp_db, bad build): a table outside the plugin's prefix; --migrate
-- must refuse the whole plugin before sending anything.
CREATE TABLE stations_extra (
  id BIGINT NOT NULL PRIMARY KEY
) ENGINE=InnoDB;
