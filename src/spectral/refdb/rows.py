"""The seed's rows: each table of the tax-prep world as C-level iterator pipelines
(map/zip/cycle over pre-rendered pools), deterministic (same scale -> same bytes), rendered as
COPY text in chunks."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import chain, cycle, islice, repeat

from spectral.refdb import pools


def _ids(a: int, b: int, base: int = 0) -> Iterator[str]:
    return map(str, range(a + base, b + base))


def _cyc(pool: tuple[str, ...], a: int, off: int = 0) -> Iterator[str]:
    return islice(cycle(pool), (a + off) % len(pool), None)


def _div(a: int, b: int, k: int) -> Iterator[str]:
    """(i - 1) // k + 1 for i in [a, b)."""
    return map(str, map(operator.floordiv, range(a - 1 + k, b - 1 + k), repeat(k)))


@cache
def _numbers(m: int) -> tuple[str, ...]:
    return tuple(str(x) for x in range(1, m + 1))


SMALL_POOL = 1 << 16   # a cycle over at most this many pre-rendered numbers (under 5 MB)


def _mod(a: int, m: int, off: int = 0) -> Iterator[str]:
    """((i - 1 + off) % m) + 1 for i from a on. A modulus that grows with the scale (the
    returns' count, 3.2 million at scale 800) is counted lazily, never held in memory: the
    seed's memory stays flat at every size."""
    if m <= SMALL_POOL:
        return _cyc(_numbers(m), a - 1 + off)
    first = (a - 1 + off) % m + 1
    return map(str, chain(range(first, m + 1), chain.from_iterable(repeat(range(1, m + 1)))))


def _rows(*cols: Iterable[str]) -> str:
    return "\n".join(map("\t".join, zip(*cols, strict=False))) + "\n"


@dataclass(frozen=True)
class Counts:
    scale: int

    @property
    def orgs(self) -> int:
        return 10 * self.scale

    @property
    def users(self) -> int:
        return 100 * self.scale

    partners = 3

    @property
    def invites(self) -> int:
        return 50 * self.scale

    @property
    def audit(self) -> int:
        return 3000 * self.scale

    @property
    def households(self) -> int:
        return 1500 * self.scale

    @property
    def taxpayers(self) -> int:
        return 2000 * self.scale

    @property
    def returns(self) -> int:
        return 2 * self.taxpayers          # one per taxpayer and year, two years

    @property
    def forms(self) -> int:
        return 3 * self.returns

    @property
    def line_items(self) -> int:
        return 4 * self.forms

    @property
    def documents(self) -> int:
        return 6000 * self.scale


@dataclass(frozen=True)
class TableSeed:
    table: str
    columns: tuple[str, ...]
    count: Callable[[Counts], int]
    chunk: Callable[[Counts, int, int], str]     # rows with ids in [a, b)


# ---- small tables: plain loops -----------------------------------------------------------
def _auth_users(c: Counts, a: int, b: int) -> str:
    t = pools.timestamps(salt="auth")
    return "".join(
        f"{pools.user_uuid(i)}\tuser{i}@org{(i - 1) % c.orgs + 1}.example\t\\N\t"
        f"{t[i % len(t)]}\t{{\"seeded\": true}}\t{t[i % len(t)]}\t{t[i % len(t)]}\n"
        for i in range(a, b))


def _orgs(c: Counts, a: int, b: int) -> str:
    t = pools.timestamps(salt="orgs")
    plans = ("free", "team", "enterprise")
    return "".join(f"{i}\torg-{i:04d}\tOrganisation {i}\t{plans[i % 3]}\t{{}}\t"
                   f"{t[i % len(t)]}\t{t[i % len(t)]}\n" for i in range(a, b))


def _core_users(c: Counts, a: int, b: int) -> str:
    n = pools.names()
    t = pools.timestamps(salt="users")
    roles = ("owner", "admin", "preparer", "preparer", "reviewer", "viewer")
    return "".join(
        f"{pools.user_uuid(i)}\t{(i - 1) % c.orgs + 1}\tuser{i}@org{(i - 1) % c.orgs + 1}.example"
        f"\t{n[i % len(n)]}\t{roles[i % 6]}\t{'f' if i % 17 == 0 else 't'}\t{t[i % len(t)]}"
        f"\t{t[i % len(t)]}\n" for i in range(a, b))


def _partners(c: Counts, a: int, b: int) -> str:
    slugs = ("acme-tax", "northwind-cpa", "globex-advisors")
    return "".join(f"{i}\t{slugs[i - 1]}\t{slugs[i - 1].replace('-', ' ').title()}\t{i}\t"
                   f"2025-0{i}-15\tdr@{slugs[i - 1]}.example\t2025-0{i}-01 09:00:00+00\n"
                   for i in range(a, b))


def _invites(c: Counts, a: int, b: int) -> str:
    t = pools.timestamps(salt="invites")
    return "".join(
        f"{i}\t{(i - 1) % c.orgs + 1}\tinvitee{i}@example.org\tviewer\t{1000 + 7 * (i - 1)}\t"
        f"{pools.user_uuid((i - 1) % c.users + 1)}\t2027-01-01 00:00:00+00\t"
        f"{t[i % len(t)] if i % 3 == 0 else chr(92) + 'N'}\t{t[i % len(t)]}\n"
        for i in range(a, b))


# ---- large tables: iterator pipelines ----------------------------------------------------
def _audit(c: Counts, a: int, b: int) -> str:
    actors = (*(pools.user_uuid(i) for i in range(1, min(c.users, 997) + 1)), "\\N")
    return _rows(_ids(a, b), _mod(a, c.orgs), _cyc(actors, a), _cyc(pools.audit_frags(), a),
                 _ids(a, b, 1000), _cyc(pools.timestamps(salt="audit"), a))


def _households(c: Counts, a: int, b: int) -> str:
    return _rows(_ids(a, b), _mod(a, c.orgs), _cyc(pools.household_frags(), a),
                 _cyc(pools.timestamps(salt="households"), a))


def _taxpayers(c: Counts, a: int, b: int) -> str:
    preparers = (*(pools.user_uuid(i) for i in range(1, min(c.users, 499) + 1)), "\\N")
    return _rows(_ids(a, b), _mod(a, c.households),
                 _cyc(pools.names(), a, 7), _cyc(pools.taxpayer_frags(), a), _cyc(preparers, a),
                 _cyc(pools.timestamps(salt="taxpayers"), a))


def _returns(c: Counts, a: int, b: int) -> str:
    years = ("2023", "2024")
    stamps = pools.timestamps(salt="returns")
    return _rows(_ids(a, b), _div(a, b, 2), _cyc(years, a - 1), _ids(a, b, 100000 - 1),
                 _cyc(pools.return_frags(), a), _cyc(pools.return_data(), a), _cyc(stamps, a),
                 _cyc(stamps, a))


def _forms(c: Counts, a: int, b: int) -> str:
    codes: list[str] = []
    for i in range(30):   # the three forms of a return: 1040, an information form, a schedule
        codes += ["1040", pools.FORM_SLOTS[1][i % 5], pools.FORM_SLOTS[2][i % 6]]
    return _rows(_ids(a, b), _div(a, b, 3), _cyc(tuple(codes), a - 1), repeat("1"),
                 _cyc(pools.form_fields(), a))


def _line_items(c: Counts, a: int, b: int) -> str:
    return _rows(_ids(a, b), _div(a, b, 4), _cyc(pools.line_frags(), a))


def _documents(c: Counts, a: int, b: int) -> str:
    return _rows(_ids(a, b), _mod(a, c.returns, 13), _cyc(pools.document_frags(), a),
                 _cyc(pools.timestamps(salt="documents", span_days=1300), a))


TABLES: tuple[TableSeed, ...] = (
    TableSeed("auth.users", ("id", "email", "encrypted_password", "email_confirmed_at",
                             "raw_user_meta_data", "created_at", "updated_at"),
              lambda c: c.users, _auth_users),
    TableSeed("core.orgs", ("id", "slug", "name", "plan", "settings", "created_at", "updated_at"),
              lambda c: c.orgs, _orgs),
    TableSeed("core.users", ("id", "org_id", "email", "display_name", "role", "is_active",
                             "created_at", "updated_at"), lambda c: c.users, _core_users),
    TableSeed("core.partners", ("id", "slug", "name", "org_id", "onboarded_on", "contact",
                                "created_at"), lambda c: c.partners, _partners),
    TableSeed("core.domain_invites", ("id", "org_id", "email", "role", "code", "invited_by",
                                      "expires_at", "accepted_at", "created_at"),
              lambda c: c.invites, _invites),
    TableSeed("core.audit_events", ("id", "org_id", "actor", "action", "entity", "detail",
                                    "entity_id", "occurred_at"), lambda c: c.audit, _audit),
    TableSeed("worlds.households", ("id", "org_id", "name", "state", "postcode", "created_at"),
              lambda c: c.households, _households),
    TableSeed("worlds.taxpayers", ("id", "household_id", "full_name", "ssn_last4", "birth_date",
                                   "filing_status", "preparer_id", "created_at"),
              lambda c: c.taxpayers, _taxpayers),
    TableSeed("worlds.returns", ("id", "taxpayer_id", "tax_year", "return_number", "status",
                                 "total_income", "total_tax", "withheld", "filed_at", "data",
                                 "created_at", "updated_at"), lambda c: c.returns, _returns),
    TableSeed("worlds.forms", ("id", "return_id", "form_code", "sequence", "fields"),
              lambda c: c.forms, _forms),
    TableSeed("worlds.line_items", ("id", "form_id", "line_no", "description", "amount",
                                    "source"), lambda c: c.line_items, _line_items),
    TableSeed("worlds.documents", ("id", "return_id", "kind", "filename", "byte_size", "sha256",
                                   "uploaded_at"), lambda c: c.documents, _documents),
)

# identity and free-standing sequences to move past the seeded ids
SEQUENCES = (
    ("core.orgs", "id"), ("core.partners", "id"), ("core.domain_invites", "id"),
    ("core.audit_events", "id"), ("worlds.households", "id"), ("worlds.taxpayers", "id"),
    ("worlds.returns", "id"), ("worlds.forms", "id"), ("worlds.line_items", "id"),
    ("worlds.returns", "return_number"), ("core.domain_invites", "code"),
)
