"""The HTML report renders in headless Chromium: the charts are drawn and the numbers are there."""

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
    spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []
