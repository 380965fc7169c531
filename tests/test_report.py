"""The HTML report renders in headless Chromium: the charts are drawn and the numbers are there;
the page of every environment (`dr report --all`) too, and printed it breaks a page before each
environment and cuts no table off."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import _processes_under, spectral
from pngread import count_colour
from spectral.config.models import EnvironmentConfig
from spectral.drills import collations
from spectral.drills.drift import Baseline, TableDrift, drift_check
from spectral.drills.integrity import AmcheckLevel, check_copy
from spectral.drills.result import Check, DrillEntry, DrillOutcome, DrillResult, DrillType
from spectral.ledger.payloads import DrillRecord
from spectral.providers.integrity import IntegrityReport, IntegrityState
from spectral.verify.collations import Collations, CollationVersion

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (dev.py test "
                                              "installs it when it runs as root)")
@pytest.mark.server
def test_html_report_renders_in_headless_chromium(work_dir: Path) -> None:
    assert spectral("demo", cwd=work_dir).returncode == 0
    code = spectral("dr", "drill", "functional", cwd=work_dir).returncode
    assert code == 0
    page = work_dir / "report.html"
    assert spectral("dr", "report", "--html", str(page), cwd=work_dir).returncode == 0
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")   # self-contained
    log = json.loads(spectral("dr", "log", "--kind", "drill", "--json", cwd=work_dir).stdout)
    from spectral.config.durations import format_duration

    latest_rto = format_duration(log[0]["data"]["rto_seconds"])
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert '<svg id="rto-chart"' in dom and '<svg id="rpo-chart"' in dom
    assert 'class="measured"' in dom and 'class="target"' in dom
    assert f"RTO {latest_rto}" in dom and "PASS" in dom
    assert dom.count("<tr>") >= 3
    # the measured points are drawn apart from the axis (a log scale: seconds against an hour;
    # exactly 0, nothing lost, on its own lane)
    import re

    for chart_id in ("rto-chart", "rpo-chart"):
        svg = dom.split(f'<svg id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
        axis = float(re.search(r'data-axis-y="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
        points = [float(v) for v in re.findall(r'class="point" cx="[\d.]+" cy="([\d.]+)"', svg)]
        assert points and all(axis - cy >= 10 for cy in points), (chart_id, axis, points)
    assert 'id="rto-split"' in dom and "restore" in dom.split('id="rto-split"', 1)[1]
    assert 'id="cadence"' in dom and "Tabletop review" in dom and "Recoverable window" in dom
    # the copy's quality, a section per check (their content: the tests below)
    for key in ("integrity", "collations", "recovery-log", "drift", "point"):
        assert f'data-section="{key}"' in dom, key
    integrity = dom.split('data-section="integrity"', 1)[1].split("</section>", 1)[0]
    assert integrity.startswith(' data-state="pass"'), integrity
    # the demo's drill ran pg_amcheck's thorough checks: this one, on their cadence, not
    assert "the thorough checks did not run (basic only)" in integrity, integrity
    assert 'data-section="point" data-state="not_run"' in dom      # not a --point random drill
    shot = work_dir / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,900", page.as_uri())
    assert shot.exists()
    assert count_colour(shot, (0x1F, 0x77, 0xB4)) > 200      # the RTO line and points
    assert count_colour(shot, (0xD6, 0x27, 0x28)) > 100      # the target lines
    _fleet_page(work_dir, latest_rto)
    spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


# ---- the sections of the copy's quality, in the text report and the HTML report ------------
SEED = 1234
BTREE = 'btree index "app.public.users_pkey", block 3: item order invariant violated'
BLOCK = "app.public.users (base/16384/16390), block 7: calculated checksum 9B1A but block " \
        "contains 1C2D"
LOGGED = "WARNING: page verification failed, calculated checksum 11605 but expected 65535"
WAL_END = "LOG: invalid record length at 0/3000148: expected at least 24, got 0"


class _Damaged:
    """A copy's physical checks as a damaged copy reports them (providers/integrity.py)."""

    def recovery_log(self) -> IntegrityReport:
        return IntegrityReport(IntegrityState.DAMAGED, "recovery logged 1 warning(s) or "
                               "error(s)", (LOGGED,), (WAL_END,))

    def amcheck(self, *, thorough: bool) -> IntegrityReport:
        assert thorough
        return IntegrityReport(IntegrityState.DAMAGED, "pg_amcheck (thorough: "
                               "--heapallindexed --parent-check): 1 damaged place(s)", (BTREE,))

    def checksums(self) -> IntegrityReport:
        return IntegrityReport(IntegrityState.DAMAGED, "pg_checksums: 1 block(s) fail their "
                               "checksum", (BLOCK,))


class _Host:
    """The restore host's answers to the collation check's two queries."""

    def rows(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        if query == collations.ACTUAL_SQL:
            return [("default", "2.41")]
        return [("app.users_email_idx", "app.users", "default")]


def every_section() -> DrillResult:
    """A --point random drill whose checks fill every section: the copy damaged (recovery log,
    pg_amcheck thorough, checksums), a collation version changed, a table dropped 90%."""
    env = EnvironmentConfig(provider="local", load_bearing_tables=["app.users", "app.orders"],
                            drift={"app.users": "-5%"})
    result = DrillResult(DrillType.FUNCTIONAL, "staging", "2026-12-05T10:00:00+00:00", "b-old",
                         "LSN 0/3000060 (exclusive), the snapshot of ...")
    result.checks.append(Check("schema fingerprint", DrillOutcome.PASS, "4 schemas equal"))
    recorded = Collations(CollationVersion("libc", "en_US.UTF-8", "2.36"))
    result.checks.append(collations.collation_check(env, recorded, _Host()))
    result.row_counts = {"app.users": 100, "app.orders": 500}
    before = Baseline(datetime(2026, 11, 20, 9, 30, tzinfo=UTC), DrillRecord(
        "functional", "pass", row_counts={"app.users": 1000, "app.orders": 480}))
    result.checks.append(drift_check(env, result.row_counts, before, "staging"))
    check_copy(result, _Damaged(), AmcheckLevel.THOROUGH, "asked for", kept=False,
               none_because="-")
    result.point = {"kind": "random", "seed": SEED, "older_than_s": 604800.0,
                    "snapshot": "snapshots/s_0-3000060.json", "snapshot_lsn": "0/3000060",
                    "snapshot_taken_at": "2026-11-25T10:00:00+00:00", "backup_id": "b-old",
                    "candidates": 3, "skipped": {"outside the recoverable window": 1}}
    return result


def _text(result: DrillResult) -> str:
    from rich.console import Console

    from spectral.cli.drill_cmds import print_drill

    console = Console(record=True, width=400)
    print_drill(console, result)
    return console.export_text()


class _Sections(HTMLParser):
    """Each <section data-section=KEY>: its state and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, tuple[str, list[str]]] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("data-section"):
            self._open = str(a["data-section"])
            self.found[self._open] = (str(a.get("data-state")), [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None and data.strip():
            self.found[self._open][1].append(data.strip())


def _html_sections(result: DrillResult, status: dict[str, Any] | None = None
                   ) -> tuple[str, dict[str, tuple[str, str]]]:
    from spectral.ledger import Entry, EntryKind
    from spectral.report import render_html

    data = json.loads(json.dumps(DrillEntry(result, "local").to_json()))   # as the ledger has it
    entry = Entry(1, datetime(2026, 12, 5, 10, 5, tzinfo=UTC), EntryKind.DRILL, "staging", data,
                  "0", "h")
    page = render_html("staging", "pitr", [entry], 3600.0, 300.0,
                       datetime(2026, 12, 5, 11, 0, tzinfo=UTC), status)
    parser = _Sections()
    parser.feed(page)
    return page, {k: (state, " | ".join(text)) for k, (state, text) in parser.found.items()}


def test_the_text_report_has_a_section_per_quality_check() -> None:
    text = _text(every_section())
    assert "Physical integrity of the copy: FAIL - the thorough checks ran; blocks fail their " \
           "checksum; damage named by relation and block below" in text
    assert "pg_amcheck, thorough (--heapallindexed --parent-check)" in text
    assert "  pg_amcheck, thorough (--heapallindexed --parent-check): FAIL - pg_amcheck " \
           "(thorough: --heapallindexed --parent-check): 1 damaged place(s) (asked for)" in text
    assert f"\n      {BTREE}\n" in text and f"\n      {BLOCK}\n" in text
    assert "  data checksums (pg_checksums --check): FAIL - pg_checksums: 1 block(s) fail" in text
    assert "Collations on the restore host: WARN" in text
    assert "the source recorded version 2.36, the restore host's library reports 2.41" in text
    assert "index app.users_email_idx on app.users (collation default)" in text
    assert "What recovery logged: FAIL - recovery logged damage: the drill cannot pass" in text
    assert f"\n      {LOGGED}\n      note: {WAL_END}\n" in text
    assert "Row-count drift: WARN - app.users: 1000 -> 100 rows (-90.0%) beyond -5%" in text
    users = next(line for line in text.splitlines() if line.lstrip().startswith("app.users "))
    assert users.split() == ["app.users", "1000", "100", "-90.0%", "-5%", "WARN"]
    orders = next(line for line in text.splitlines() if line.lstrip().startswith("app.orders "))
    assert orders.split() == ["app.orders", "480", "500", "+4.2%", "-10%", "PASS"]
    assert "Recovery point chosen at random: FAIL - an old snapshot's point, restored from " \
           "the oldest backup that reaches it (the drill: FAIL)" in text
    assert "snapshots/s_0-3000060.json at LSN 0/3000060, taken 2026-11-25T10:00:00+00:00" in text
    assert "age: 10.0 d when the drill started (asked: older than 7.0 d)" in text
    assert f"{SEED} (replay: --point random --seed {SEED} --older-than 604800s)" in text
    assert "b-old, the oldest that reaches it" in text
    assert "3, 1 skipped outside the recoverable window" in text
    # shown in their sections, not again in the list of checks
    assert text.count("pg_checksums: 1 block(s) fail their checksum") == 1


def test_the_html_report_has_the_same_sections() -> None:
    page, found = _html_sections(every_section())
    assert list(found) == ["integrity", "collations", "recovery-log", "drift", "point"]
    state, text = found["integrity"]
    assert state == "fail" and "the thorough checks ran" in text and BTREE in text
    assert BLOCK in text and "pg_amcheck, thorough (--heapallindexed --parent-check)" in text
    state, text = found["collations"]
    assert state == "warn" and "the restore host's library reports 2.41" in text
    assert "index app.users_email_idx on app.users (collation default)" in text
    state, text = found["recovery-log"]
    assert state == "fail" and LOGGED in text and f"note: {WAL_END}" in text
    state, text = found["drift"]
    assert state == "warn"
    assert "app.users | 1000 | 100 | -90.0% | -5% | WARN" in text
    assert "app.orders | 480 | 500 | +4.2% | -10% | PASS" in text
    state, text = found["point"]
    assert "10.0 d when the drill started" in text and f"--seed {SEED}" in text
    assert "b-old, the oldest that reaches it" in text
    checks = page.split('<table class="checks" id="checks">', 1)[1].split("</table>", 1)[0]
    assert "schema fingerprint" in checks and "pg_amcheck" not in checks


def test_a_check_that_did_not_run_says_so() -> None:
    stopped = DrillResult(DrillType.FUNCTIONAL, "staging", "2026-12-05T10:00:00+00:00",
                          error="no backup reaches the target")
    text = _text(stopped)
    for title in ("Physical integrity of the copy", "Collations on the restore host",
                  "What recovery logged", "Row-count drift", "Recovery point"):
        assert f"{title}: NOT RUN" in text, text
    assert "not run: the drill stopped before it (no backup reaches the target)" in text
    assert "not run: not a --point random drill" in text
    _, found = _html_sections(stopped)
    assert {k: s for k, (s, _) in found.items()} == dict.fromkeys(found, "not_run")
    assert "not run: the drill stopped before it" in found["integrity"][1]
    # a copy no provider can check physically, its first drill: not checked, never a pass
    unchecked = DrillResult(DrillType.FUNCTIONAL, "staging", "2026-12-05T10:00:00+00:00")
    check_copy(unchecked, None, AmcheckLevel.BASIC, "-", kept=False,
               none_because="supabase offers no physical check of the project")
    env = EnvironmentConfig(provider="local", load_bearing_tables=["app.users"])
    unchecked.row_counts = {"app.users": 7}
    unchecked.checks.append(drift_check(env, unchecked.row_counts, None, "staging"))
    text = _text(unchecked)
    assert "Physical integrity of the copy: NOT CHECKED - pg_amcheck did not run; checksums " \
           "not verified" in text
    assert "not checked: supabase offers no physical check of the project" in text
    assert "Row-count drift: NOT CHECKED - no earlier passing drill of staging" in text
    assert next(line for line in text.splitlines() if line.lstrip().startswith(
        "app.users ")).split() == ["app.users", "-", "7", "-", "not", "compared", "NOT", "CHECKED"]


def test_a_drift_line_reads_back_as_it_was_written() -> None:
    for table in (TableDrift("core.a", 1000, 100, "-10%", True),
                  TableDrift("core.b", 200, 209, " 5 % ", False),
                  TableDrift("core.c", None, 4), TableDrift("core.d", 3, None)):
        assert TableDrift.parse(table.line()) == table, table.line()
    assert TableDrift.parse("against the passing drill of 2026-12-01 09:30 UTC") is None


# Run in a copy of the page with its print rules applied on screen, at an A4 page's printable
# width (210 mm less 2 x 12 mm margins at 96 dpi): what a printed page would cut off.
MEASURE = """<script>
const width = document.body.clientWidth;
const cut = [...document.querySelectorAll('table, svg')].filter(
  t => t.getBoundingClientRect().right > width + 1).map(t => t.id || t.tagName);
const breaks = [...document.querySelectorAll('section.environment')].map(
  s => getComputedStyle(s).breakBefore);
document.body.insertAdjacentHTML('beforeend', '<pre id="measured">' +
  JSON.stringify({width, cut, breaks}) + '</pre>');
</script>"""


def _fleet_page(work: Path, latest_rto: str) -> None:
    """The demo's environment and one whose database does not answer, on one page."""
    from test_alerts import closed_port

    (work / "spectral.toml").write_text(
        '[environments.local]\nprovider = "local"\n[environments.analytics]\n'
        f'provider = "dsn"\nposture = "pro"\n'
        f'dsn = "postgresql://reports@127.0.0.1:{closed_port()}/analytics"\n')
    answers = work / "answers.json"
    answers.write_text(json.dumps({"participants": ["ana"], "findings": [],
                                   "action_items": []}))
    assert spectral("--env", "analytics", "dr", "tabletop", "--scenario", "schema-drop",
                    "--answers", str(answers), cwd=work).returncode == 0
    page = work / "fleet.html"
    res = spectral("dr", "report", "--all", "--html", str(page), cwd=work)
    assert res.returncode == 0, res.stderr
    printed = work / "fleet-print.html"
    printed.write_text(page.read_text().replace("@media print{", "@media all{")
                       .replace("</body>", MEASURE + "</body>"))
    dom = chromium("--dump-dom", "--window-size=703,1000", printed.as_uri()).stdout
    facts = json.loads(dom.rsplit('<pre id="measured">', 1)[1].split("</pre>", 1)[0])
    assert facts["cut"] == [] and facts["breaks"] == ["page", "page"], facts
    summary = dom.split('id="fleet-summary"', 1)[1].split("</table>", 1)[0]
    assert summary.count("<tr>") == 3 and 'href="#env-0"' in summary    # the head, 2 rows
    assert "PASS" in summary and "cannot connect" not in summary
    assert "analytics: could not verify: cannot connect" in dom
    local, analytics = (dom.split(f'id="env-{i}"', 1)[1] for i in (0, 1))
    assert 'class="point"' in local.split('id="env-1"')[0] and f"RTO {latest_rto}" in local
    assert 'id="e0-cadence"' in local and 'id="e0-history"' in local
    assert 'id="e1-rto-chart"' in analytics and "no drills yet" in analytics
    assert "Tabletop review" in analytics and "Ledger: 1 entries, intact" in analytics
    pdf = work / "fleet.pdf"
    chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
    import re

    pages = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
    assert pages >= 3, pages          # the summary, then each environment from a new page
