"""The authoring harness: Spectral-owned rule corpora, generated deterministically.

Partner-owned corpora are never generated here: they are the partner's data, load-bearing and
not regenerable (the runbook), and are protected by `db reseed` and exported by `db export-rules`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import psycopg

from spectral.errors import UsageError

SPECTRAL_CORPORA = (
    ("federal-core", "Federal individual income tax rules"),
    ("state-ca", "California personal income tax rules"),
    ("validation-core", "Return validation rules"),
)
KINDS = ("deduction", "credit", "validation", "form_mapping")
VERSION_FROM = "2025-01-01 00:00:00+00"


@dataclass(frozen=True)
class AuthorResult:
    corpora: int
    rules: int


def rule_body(corpus: str, n: int) -> dict[str, Any]:
    r = random.Random(f"{corpus}:{n}")
    kind = KINDS[n % len(KINDS)]
    body: dict[str, Any] = {
        "applies_to": r.choice(["1040", "Schedule A", "Schedule C", "W-2", "1099-INT"]),
        "when": {"field": r.choice(["total_income", "dependents", "filing_status", "state"]),
                 "op": r.choice(["gt", "lt", "eq", "in"]),
                 "value": r.randrange(0, 250_000, 500)},
        "effect": {"kind": kind, "amount": round(r.uniform(0, 5000), 2),
                   "cap": r.choice([None, 2500, 10000])},
        "cite": f"IRC §{r.randrange(1, 9999)}",
    }
    return body


def author(conn: psycopg.Connection[Any], *, rules_per_corpus: int = 400,
           org_id: int = 1) -> AuthorResult:
    """Replace the Spectral-owned corpora (ids 1..) with freshly generated ones, in one
    transaction. Partner-owned corpora are left as they are."""
    row = conn.execute("select exists (select 1 from core.orgs where id = %s)",
                       (org_id,)).fetchone()
    if not row or not row[0]:
        raise UsageError(f"the authoring harness needs the seeded world (organisation {org_id} "
                         f"is missing)", hint="spectral db seed first, or spectral db reseed")
    total = 0
    with conn.transaction():
        conn.execute("delete from platform.corpora where owner = 'spectral'")
        for c_id, (slug, title) in enumerate(SPECTRAL_CORPORA, start=1):
            conn.execute("insert into platform.corpora (id, slug, title, owner, org_id, "
                         "created_at) overriding system value "
                         "values (%s, %s, %s, 'spectral', %s, %s)",
                         (c_id, slug, title, org_id, VERSION_FROM))
            base = (c_id - 1) * rules_per_corpus
            rows = []
            for n in range(1, rules_per_corpus + 1):
                body = json.dumps(rule_body(slug, n), sort_keys=True)
                rows.append((base + n, c_id, f"{slug}.r{n:05d}", KINDS[n % len(KINDS)],
                             f"{slug} rule {n}", body, 100 + n % 50, n % 23 != 0, VERSION_FROM))
            with conn.cursor() as cur:
                with cur.copy("COPY platform.rules (id, corpus_id, rule_key, kind, title, body, "
                              "priority, enabled, updated_at) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
                with cur.copy("COPY platform.rule_versions (rule_id, version, body, valid_during) "
                              "FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row((row[0], 1, row[5], f"[{VERSION_FROM},)"))
                with cur.copy("COPY platform.rule_references (rule_id, references_id) "
                              "FROM STDIN") as cp:
                    for n in range(5, rules_per_corpus + 1, 5):
                        cp.write_row((base + n, base + n - 1))
            total += rules_per_corpus
        conn.execute("select setval(pg_get_serial_sequence('platform.corpora', 'id'), "
                     "greatest((select max(id) from platform.corpora), 1))")
        conn.execute("select setval(pg_get_serial_sequence('platform.rules', 'id'), "
                     "greatest((select max(id) from platform.rules), 1))")
    return AuthorResult(len(SPECTRAL_CORPORA), total)


def partner_corpus(conn: psycopg.Connection[Any], partner: str, *, rules: int = 100,
                   corpus: str | None = None) -> int:
    """A partner-owned corpus for demos, tests and benchmarks (real partner corpora arrive by
    import-rules; they are never generated). Returns the corpus id."""
    row = conn.execute("select id, org_id from core.partners where slug = %s",
                       (partner,)).fetchone()
    if row is None:
        raise UsageError(f"unknown partner {partner!r}")
    partner_id, org_id = row
    slug = corpus or f"{partner}-rules"
    with conn.transaction():
        cid_row = conn.execute(
            "insert into platform.corpora (slug, title, owner, partner_id, org_id, created_at) "
            "values (%s, %s, 'partner', %s, %s, %s) returning id",
            (slug, f"{partner} rules", partner_id, org_id, VERSION_FROM)).fetchone()
        assert cid_row is not None
        cid = int(cid_row[0])
        with conn.cursor() as cur, cur.copy(
                "COPY platform.rules (corpus_id, rule_key, kind, title, body, priority, enabled,"
                " updated_at) FROM STDIN") as cp:
            for n in range(1, rules + 1):
                cp.write_row((cid, f"{slug}.r{n:06d}", KINDS[n % len(KINDS)],
                              f"{partner} rule {n}", json.dumps(rule_body(slug, n),
                                                                sort_keys=True),
                              100 + n % 50, True, VERSION_FROM))
        conn.execute("insert into platform.rule_versions (rule_id, version, body, valid_during) "
                     "select id, 1, body, tstzrange(%s, null) from platform.rules "
                     "where corpus_id = %s", (VERSION_FROM, cid))
        conn.execute("insert into platform.rule_references select r.id, p.id "
                     "from platform.rules r join platform.rules p on p.corpus_id = r.corpus_id "
                     "and p.rule_key = replace(r.rule_key, right(r.rule_key, 6), "
                     "lpad((right(r.rule_key, 6)::int - 1)::text, 6, '0')) "
                     "where r.corpus_id = %s and right(r.rule_key, 6)::int %% 10 = 0", (cid,))
    return cid
