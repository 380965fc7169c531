-- Row-level security, grants and comments across the three schemas.
ALTER TABLE core.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_same_org ON core.users FOR SELECT TO authenticated
    USING (org_id = core.current_org_id());
CREATE POLICY users_self_update ON core.users FOR UPDATE TO authenticated
    USING (id::text = current_setting('spectral.actor', true))
    WITH CHECK (org_id = core.current_org_id());

ALTER TABLE worlds.returns ENABLE ROW LEVEL SECURITY;
ALTER TABLE worlds.returns FORCE ROW LEVEL SECURITY;
CREATE POLICY returns_org ON worlds.returns FOR ALL TO authenticated
    USING (EXISTS (SELECT 1 FROM worlds.taxpayers t JOIN worlds.households h ON h.id = t.household_id
                   WHERE t.id = taxpayer_id AND h.org_id = core.current_org_id()));

ALTER TABLE platform.rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY rules_tenant ON platform.rules FOR ALL TO authenticated
    USING (corpus_id IN (SELECT id FROM platform.corpora WHERE org_id = core.current_org_id()))
    WITH CHECK (corpus_id IN (SELECT id FROM platform.corpora
                              WHERE org_id = core.current_org_id()));
CREATE POLICY rules_reviewer_read ON platform.rules FOR SELECT TO spectral_reviewer USING (true);

GRANT USAGE ON SCHEMA core, worlds, platform TO authenticated, service_role, spectral_reviewer;
GRANT SELECT ON ALL TABLES IN SCHEMA core, worlds, platform TO authenticated;
GRANT INSERT, UPDATE ON worlds.returns, worlds.forms, worlds.line_items TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA core, worlds, platform TO service_role;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA core, worlds, platform TO service_role;
GRANT SELECT ON platform.rules, platform.corpora, platform.rule_versions TO spectral_reviewer;
REVOKE EXECUTE ON FUNCTION platform.record_rule_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION platform.active_rules(bigint) TO authenticated;

COMMENT ON TABLE core.users IS 'Application users; rows repopulate from re-invite acceptance.';
COMMENT ON COLUMN core.users.role IS 'Role inside the organisation.';
COMMENT ON TABLE core.domain_invites IS 'Invitations; re-issued after a provider failover.';
COMMENT ON TABLE worlds.returns IS 'One tax return per taxpayer and year.';
COMMENT ON COLUMN worlds.returns.refund IS 'Withheld minus total tax; negative means tax due.';
COMMENT ON TABLE platform.rules IS 'Rules of a corpus; partner corpora are load-bearing.';
COMMENT ON FUNCTION platform.active_rules(bigint) IS 'Enabled rules of a corpus in priority order.';
COMMENT ON MATERIALIZED VIEW worlds.yearly_totals IS 'Refreshed after each seed.';
