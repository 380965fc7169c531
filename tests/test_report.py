"""The HTML report renders in headless Chromium: the charts are drawn and the numbers are there;
the page of every environment (`dr report --all`) too, and printed it breaks a page before each
environment and cuts no table off."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import _processes_under, spectral
from pngread import count_colour

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
    shot = work_dir / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,900", page.as_uri())
    assert shot.exists()
    assert count_colour(shot, (0x1F, 0x77, 0xB4)) > 200      # the RTO line and points
    assert count_colour(shot, (0xD6, 0x27, 0x28)) > 100      # the target lines
    _fleet_page(work_dir, latest_rto)
    spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


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
