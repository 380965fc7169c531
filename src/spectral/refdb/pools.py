"""Deterministic value pools for the seed. Every pool is made from a fixed random seed, so the
same scale always produces the same bytes. Columns that must agree with each other (a status and
its filing time, income and tax) are pooled together as one tab-joined fragment."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, date, datetime, timedelta
from functools import cache

BASE = datetime(2023, 1, 1, tzinfo=UTC)

FIRST = ["Ava", "Ben", "Chloe", "Dmitri", "Elena", "Farah", "Gus", "Hana", "Ines", "Jon",
         "Kofi", "Lena", "Malik", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara",
         "Uma", "Vik", "Wen", "Xavi", "Yara", "Zoe"]
LAST = ["Abbott", "Baker", "Castillo", "Duarte", "Evans", "Fischer", "Garcia", "Huang", "Ito",
        "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Quist",
        "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Yilmaz", "Zhou"]
STATES = ["CA", "NY", "TX", "WA", "FL", "IL", "MA", "CO", "OR", "GA", "NC", "AZ"]
LINES = [("1", "Wages, salaries, tips"), ("2b", "Taxable interest"), ("3b", "Ordinary dividends"),
         ("4b", "IRA distributions"), ("7", "Capital gain or loss"), ("8", "Other income"),
         ("10", "Adjustments to income"), ("12", "Standard deduction"), ("16", "Tax"),
         ("19", "Child tax credit"), ("25a", "Federal income tax withheld (W-2)"),
         ("25b", "Federal income tax withheld (1099)"), ("33", "Total payments")]
FORM_SLOTS = [["1040"], ["W-2", "1099-INT", "1099-DIV", "1099-B", "1099-R"],
              ["Schedule A", "Schedule B", "Schedule C", "Schedule D", "Schedule SE", "8812"]]
DOC_KINDS = ["w2", "1099", "receipt", "id", "prior_return", "statement"]


def _rng(salt: str) -> random.Random:
    return random.Random(int(hashlib.sha256(salt.encode()).hexdigest()[:16], 16))


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S+00")


@cache
def timestamps(n: int = 4999, salt: str = "ts", span_days: int = 1000) -> tuple[str, ...]:
    r = _rng(salt)
    return tuple(ts(BASE + timedelta(seconds=r.randrange(span_days * 86400))) for _ in range(n))


@cache
def names(n: int = 2003) -> tuple[str, ...]:
    r = _rng("names")
    return tuple(f"{r.choice(FIRST)} {r.choice(LAST)}" for _ in range(n))


@cache
def household_frags(n: int = 1009) -> tuple[str, ...]:
    r = _rng("households")
    return tuple(f"{r.choice(LAST)} household\t{r.choice(STATES)}\t{r.randrange(10000, 99999):05d}"
                 for _ in range(n))


@cache
def taxpayer_frags(n: int = 1013) -> tuple[str, ...]:
    r = _rng("taxpayers")
    statuses = ["single", "married_joint", "married_separate", "head_of_household", "widow"]
    out = []
    for _ in range(n):
        born = date(1940, 1, 1) + timedelta(days=r.randrange(60 * 365))
        out.append(f"{r.randrange(10000):04d}\t{born.isoformat()}\t{r.choice(statuses)}")
    return tuple(out)


@cache
def return_frags(n: int = 1021) -> tuple[str, ...]:
    """status, total_income, total_tax, withheld, filed_at: consistent with the checks."""
    r = _rng("returns")
    out = []
    for _ in range(n):
        status = r.choices(["draft", "in_review", "filed", "accepted", "rejected"],
                           [2, 1, 2, 6, 1])[0]
        income = r.randrange(1_500_000, 40_000_000) / 100
        tax = round(income * r.uniform(0.05, 0.3), 2)
        withheld = round(tax * r.uniform(0.7, 1.3), 2)
        filed = "\\N" if status in ("draft", "in_review") else ts(
            BASE + timedelta(days=r.randrange(800), seconds=r.randrange(86400)))
        out.append(f"{status}\t{income:.2f}\t{tax:.2f}\t{withheld:.2f}\t{filed}")
    return tuple(out)


@cache
def return_data(n: int = 509) -> tuple[str, ...]:
    r = _rng("return-data")
    out = []
    for _ in range(n):
        doc = {"efile": r.random() < 0.8, "state_return": r.choice(STATES),
               "dependents": r.randrange(4), "notes": r.choice(
                   ["", "awaiting 1099-B", "amended prior year", "estimated payments made",
                    "first-time filer", "moved states mid-year"])}
        out.append(json.dumps(doc, sort_keys=True, separators=(", ", ": ")))
    return tuple(out)


@cache
def form_fields(n: int = 251) -> tuple[str, ...]:
    r = _rng("form-fields")
    return tuple(json.dumps({"pages": r.randrange(1, 6), "verified": r.random() < 0.6,
                             "source": r.choice(["upload", "import", "manual"])}, sort_keys=True)
                 for _ in range(n))


@cache
def line_frags(n: int = 2011) -> tuple[str, ...]:
    r = _rng("lines")
    out = []
    for _ in range(n):
        line_no, desc = r.choice(LINES)
        amount = r.randrange(-500_000, 9_000_000) / 100
        source = r.choices(["manual", "import", "rule"], [5, 3, 2])[0]
        out.append(f"{line_no}\t{desc}\t{amount:.2f}\t{source}")
    return tuple(out)


@cache
def document_frags(n: int = 1031) -> tuple[str, ...]:
    """kind, filename, byte_size, sha256."""
    r = _rng("documents")
    out = []
    for i in range(n):
        kind = r.choice(DOC_KINDS)
        digest = hashlib.sha256(f"doc-{i}".encode()).hexdigest()
        out.append(f"{kind}\t{kind}-{i:04d}.pdf\t{r.randrange(20_000, 4_000_000)}\t{digest}")
    return tuple(out)


@cache
def audit_frags(n: int = 1039) -> tuple[str, ...]:
    """action, entity, detail."""
    r = _rng("audit")
    actions = [("login", "core.users"), ("status_change", "worlds.returns"),
               ("upload", "worlds.documents"), ("invite", "core.domain_invites"),
               ("export", "platform.rules")]
    out = []
    for _ in range(n):
        action, entity = r.choice(actions)
        detail = json.dumps({"ip": f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(256)}",
                             "ua": r.choice(["web", "cli", "api"])}, sort_keys=True)
        out.append(f"{action}\t{entity}\t{detail}")
    return tuple(out)


def user_uuid(i: int) -> str:
    h = hashlib.sha256(f"user-{i}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
