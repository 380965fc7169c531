-- worlds: the tax-prep world (taxpayers, households, returns, forms, line items, documents).
CREATE SCHEMA worlds;
COMMENT ON SCHEMA worlds IS 'The tax-prep world: a dev/demo asset, regenerable from the seed.';

CREATE TYPE worlds.return_status AS ENUM ('draft', 'in_review', 'filed', 'accepted', 'rejected');
CREATE TYPE worlds.filing_status AS ENUM ('single', 'married_joint', 'married_separate',
                                          'head_of_household', 'widow');

CREATE DOMAIN worlds.money AS numeric(14, 2)
    CONSTRAINT money_range CHECK (VALUE > -1000000000000 AND VALUE < 1000000000000);
CREATE DOMAIN worlds.tax_year AS integer
    CONSTRAINT tax_year_range CHECK (VALUE BETWEEN 1990 AND 2100);

CREATE TABLE worlds.households (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     bigint NOT NULL REFERENCES core.orgs (id),
    name       text NOT NULL,
    state      char(2) NOT NULL,
    postcode   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX households_org_idx ON worlds.households (org_id);

CREATE TABLE worlds.taxpayers (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    household_id   bigint NOT NULL REFERENCES worlds.households (id) ON DELETE CASCADE,
    full_name      text NOT NULL,
    ssn_last4      char(4) NOT NULL CHECK (ssn_last4 ~ '^[0-9]{4}$'),
    birth_date     date NOT NULL,
    filing_status  worlds.filing_status NOT NULL,
    preparer_id    uuid REFERENCES core.users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX taxpayers_household_idx ON worlds.taxpayers (household_id);
CREATE INDEX taxpayers_name_lower_idx ON worlds.taxpayers (lower(full_name));

CREATE SEQUENCE worlds.return_number_seq AS bigint START WITH 100000 INCREMENT BY 1 CACHE 1;

CREATE TABLE worlds.returns (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taxpayer_id   bigint NOT NULL REFERENCES worlds.taxpayers (id) ON DELETE CASCADE,
    tax_year      worlds.tax_year NOT NULL,
    return_number bigint NOT NULL DEFAULT nextval('worlds.return_number_seq') UNIQUE,
    status        worlds.return_status NOT NULL DEFAULT 'draft',
    total_income  worlds.money NOT NULL DEFAULT 0,
    total_tax     worlds.money NOT NULL DEFAULT 0,
    withheld      worlds.money NOT NULL DEFAULT 0,
    refund        worlds.money GENERATED ALWAYS AS (withheld - total_tax) STORED,
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    filed_at      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT returns_one_per_year UNIQUE (taxpayer_id, tax_year),
    CONSTRAINT returns_filed_has_time CHECK (status IN ('draft', 'in_review') OR filed_at IS NOT NULL)
);
ALTER SEQUENCE worlds.return_number_seq OWNED BY worlds.returns.return_number;
CREATE INDEX returns_status_idx ON worlds.returns (status) WHERE status IN ('draft', 'in_review');
CREATE INDEX returns_updated_idx ON worlds.returns (updated_at);

CREATE TABLE worlds.forms (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    return_id  bigint NOT NULL REFERENCES worlds.returns (id) ON DELETE CASCADE,
    form_code  text NOT NULL,
    sequence   smallint NOT NULL DEFAULT 1,
    fields     jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (return_id, form_code, sequence)
);

CREATE TABLE worlds.line_items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    form_id     bigint NOT NULL REFERENCES worlds.forms (id) ON DELETE CASCADE,
    line_no     text NOT NULL,
    description text NOT NULL,
    amount      worlds.money NOT NULL,
    source      text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'import', 'rule'))
);
CREATE INDEX line_items_form_idx ON worlds.line_items (form_id);

-- Uploaded documents, partitioned by upload year.
CREATE TABLE worlds.documents (
    id          bigint NOT NULL,
    return_id   bigint NOT NULL,
    kind        text NOT NULL,
    filename    text NOT NULL,
    byte_size   integer NOT NULL CHECK (byte_size >= 0),
    sha256      text NOT NULL CHECK (length(sha256) = 64),
    uploaded_at timestamptz NOT NULL,
    PRIMARY KEY (id, uploaded_at)
) PARTITION BY RANGE (uploaded_at);
CREATE TABLE worlds.documents_2023 PARTITION OF worlds.documents
    FOR VALUES FROM ('2023-01-01 00:00:00+00') TO ('2024-01-01 00:00:00+00');
CREATE TABLE worlds.documents_2024 PARTITION OF worlds.documents
    FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00');
CREATE TABLE worlds.documents_2025 PARTITION OF worlds.documents
    FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2026-01-01 00:00:00+00');
CREATE TABLE worlds.documents_default PARTITION OF worlds.documents DEFAULT;
CREATE INDEX documents_return_idx ON worlds.documents (return_id);

CREATE FUNCTION worlds.effective_rate(income numeric, tax numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT CASE WHEN income > 0 THEN round(tax / income, 4) ELSE 0 END $$;

CREATE FUNCTION worlds.log_status_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO core.audit_events (actor, action, entity, entity_id, detail)
        VALUES (nullif(current_setting('spectral.actor', true), '')::uuid, 'status_change',
                'worlds.returns', NEW.id::text,
                jsonb_build_object('from', OLD.status, 'to', NEW.status));
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER returns_touch BEFORE UPDATE ON worlds.returns
    FOR EACH ROW EXECUTE FUNCTION core.touch_updated_at();
CREATE TRIGGER returns_status_audit AFTER UPDATE OF status ON worlds.returns
    FOR EACH ROW EXECUTE FUNCTION worlds.log_status_change();

CREATE VIEW worlds.return_summary AS
    SELECT r.id, r.tax_year, r.status, t.full_name, h.org_id,
           r.total_income, r.total_tax, r.refund,
           worlds.effective_rate(r.total_income, r.total_tax) AS effective_rate
    FROM worlds.returns r
    JOIN worlds.taxpayers t ON t.id = r.taxpayer_id
    JOIN worlds.households h ON h.id = t.household_id;

CREATE MATERIALIZED VIEW worlds.yearly_totals AS
    SELECT tax_year, status, count(*) AS returns, sum(total_tax)::numeric(18, 2) AS total_tax
    FROM worlds.returns
    GROUP BY tax_year, status
    WITH NO DATA;
CREATE UNIQUE INDEX yearly_totals_key ON worlds.yearly_totals (tax_year, status);
