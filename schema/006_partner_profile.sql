-- 006_partner_profile: the per-partner CEC protocol profile, set through the operator API.
-- A JSON object: an optional "preset" (cec2016|orise|xj|cjv|sh) applied first, then any of the
-- cec_profile_t flags by name (plugins/cec/cec_proto.h), e.g.
-- {"preset": "orise", "token_ttl": 86400} or {"sig_lower_out": true}. '{}' = the 2016 text.
ALTER TABLE partners ADD COLUMN profile JSON NOT NULL DEFAULT '{}' COMMENT 'CEC profile: preset + flags' AFTER status;
