"""docs/prometheus/spectral-rules.yml against the figures spectral writes: `promtool check rules`
on the file, `promtool test rules` evaluating every rule on the exposition `dr status --all
--prom-file` writes for a fleet (one healthy environment, one with a failed drill, an overdue
item and an RTO over its target, one whose provider did not answer, one whose status job
stopped), `promtool check metrics` on that exposition, and every metric a rule names is one
spectral writes. promtool is Debian's `prometheus` package, which `dev.py test` installs: the
full run fails without it (only `dev.py test --fast`, which installs nothing, leaves it out)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import spectral
from test_alerts import closed_port

RULES = Path(__file__).parent.parent / "docs" / "prometheus" / "spectral-rules.yml"
NOW = "2026-12-01T09:30:00+00:00"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `python3 dev.py test` installs Debian's prometheus"
    return subprocess.run([tool, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def row(name: str, **changes: Any) -> dict[str, Any]:
    """A row of `dr status --all --json`: a pitr environment whose last drill passed in time."""
    base: dict[str, Any] = {
        "name": name, "environment": name, "reachable": True, "error": None,
        "posture": "pitr", "at": NOW,
        "targets": {"rpo_seconds": 120, "rto_seconds": 3600},
        "measured": {"rpo_seconds": 1.5, "rto_seconds": 95.0},
        "last_drill": {"at": NOW, "type": "functional", "outcome": "pass", "error": None},
        "cadence": [{"name": "Functional restore drill", "state": "ok"},
                    {"name": "Tabletop review", "state": "ok"}],
        "backup": {"newest": "b1", "age_seconds": 3600.0, "state": "ok"},
        "wal": {"rpo_bytes": 8192}, "ledger": {"entries": 9, "intact": True, "head": "ab"},
        "overdue": [], "window": None, "state": "ok"}
    return {**base, **changes}


FLEET = [
    row("production"),
    row("staging", measured={"rpo_seconds": 0.0, "rto_seconds": 5400.0},
        last_drill={"at": NOW, "type": "functional", "outcome": "fail", "error": "rows"},
        cadence=[{"name": "Tabletop review", "state": "overdue"}],
        overdue=["Tabletop review"], state="failed"),
    row("preview", reachable=False, error="Supabase Management API unreachable",
        measured={"rpo_seconds": 900.0, "rto_seconds": 60.0}, wal=None,
        backup={"newest": None, "age_seconds": None, "state": "could_not_verify"},
        last_drill={"at": NOW, "type": "functional", "outcome": "could_not_verify",
                    "error": "no snapshot"}, state="could_not_verify"),
    row("archive", at="1970-01-01T00:00:00+00:00"),      # its status job ran at time 0
]


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    from spectral.drills.metrics import write_prometheus

    path = tmp_path_factory.mktemp("prom") / "spectral.prom"
    write_prometheus(FLEET, path)
    return path.read_text()


def _series(text: str) -> list[dict[str, str]]:
    """The exposition as promtool's input series, each held for 28 hours."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out.append({"series": f"{s.name}{{{labels}}}", "values": f"{s.value!r}x1700"})
    return out


def _expected(rules: dict[str, dict[str, Any]], name: str,
              fired: list[dict[str, str]]) -> dict[str, Any]:
    rule = rules[name]
    return {"alertname": name, "exp_alerts": [
        {"exp_labels": {**rule.get("labels", {}), **labels},
         "exp_annotations": {k: v.replace("{{ $labels.environment }}", labels["environment"])
                             for k, v in rule["annotations"].items()}} for labels in fired]}


# the full run (`dev.py test`, CI) installs promtool and fails without it; only the inner loop
# (`dev.py test --fast`), which installs no system packages, leaves this test out, and says so
@pytest.mark.skipif(os.environ.get("SPECTRAL_TEST_FAST") == "1" and not shutil.which("promtool"),
                    reason="dev.py test --fast installs no system packages; dev.py test "
                           "installs Debian's prometheus (promtool)")
def test_promtool_evaluates_the_rules_on_spectrals_exposition(exposition: str,
                                                              tmp_path: Path) -> None:
    check = promtool("check", "rules", str(RULES))
    assert check.returncode == 0 and "SUCCESS: 6 rules found" in check.stdout, check.stderr
    lint = promtool("check", "metrics", stdin=exposition)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"]
             for r in g["rules"]}
    at_2h = [_expected(rules, "SpectralDrOverdue", [{"environment": "staging"}]),
             _expected(rules, "SpectralDrDrillFailed", [{"environment": "staging",
                                                         "outcome": "fail"}]),
             _expected(rules, "SpectralDrCouldNotVerify", [{"environment": "preview"}]),
             _expected(rules, "SpectralDrRtoOverTarget", [{"environment": "staging"}]),
             _expected(rules, "SpectralDrRpoOverTarget", [{"environment": "preview"}]),
             _expected(rules, "SpectralDrStatusStale", [])]
    at_27h = [_expected(rules, "SpectralDrStatusStale", [{"environment": "archive"}])]
    tests = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": _series(exposition), "alert_rule_test": [
            *({"eval_time": "2h", **t} for t in at_2h),
            *({"eval_time": "27h", **t} for t in at_27h)]}]}
    path = tmp_path / "rules-test.yml"
    path.write_text(json.dumps(tests, indent=1))           # JSON is YAML
    res = promtool("test", "rules", str(path))
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_every_metric_a_rule_names_is_one_spectral_writes(exposition: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    written = {f.name for f in text_string_to_metric_families(exposition)}
    assert {"spectral_dr_ok", "spectral_dr_reachable", "spectral_dr_overdue"} <= written
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"SpectralDrOverdue", "SpectralDrDrillFailed",
                                           "SpectralDrCouldNotVerify", "SpectralDrRtoOverTarget",
                                           "SpectralDrRpoOverTarget"}
    for rule in rules:
        named = set(re.findall(r"\bspectral_[a-z_]+", rule["expr"]))
        assert named and named <= written, (rule["alert"], named - written)
        # nothing else but PromQL's own words and numbers
        rest = re.sub(r"\bspectral_[a-z_]+|\{[^}]*\}|\d+", " ", rule["expr"])
        assert set(rest.split()) <= {"==", ">", "*", "-", "or", "max", "by", "(", ")",
                                     "(environment)", "time()"}, (rule["alert"], rest)


def test_status_all_writes_every_environment_in_one_exposition(tmp_path: Path) -> None:
    """Two environments whose databases do not answer: both in one textfile, each labelled."""
    from prometheus_client.parser import text_string_to_metric_families

    dead = closed_port()
    (tmp_path / "spectral.toml").write_text("".join(
        f'[environments.{n}]\nprovider = "dsn"\nposture = "alpha"\n'
        f'dsn = "postgresql://spectral@127.0.0.1:{dead}/{n}"\n' for n in ("billing", "search")))
    prom = tmp_path / "textfile" / "spectral.prom"
    res = spectral("dr", "status", "--all", "--prom-file", str(prom), cwd=tmp_path)
    assert res.returncode == 1, res.stderr              # the tabletop review: overdue
    samples = [s for f in text_string_to_metric_families(prom.read_text()) for s in f.samples]
    reachable = {s.labels["environment"]: s.value for s in samples
                 if s.name == "spectral_dr_reachable"}
    assert reachable == {"billing": 0.0, "search": 0.0}
    ok = {s.labels["environment"]: s.value for s in samples if s.name == "spectral_dr_ok"}
    assert ok == {"billing": 0.0, "search": 0.0}
    assert [p.name for p in prom.parent.iterdir()] == ["spectral.prom"]   # replaced atomically
    junit = spectral("dr", "status", "--all", "--junit", str(tmp_path / "j.xml"), cwd=tmp_path)
    assert junit.returncode == 2 and "not with --all" in junit.stderr


def test_an_unreadable_evidence_store_is_not_ok_in_the_exposition(tmp_path: Path) -> None:
    """Nothing is known of an environment whose ledger cannot be read: spectral_dr_ok was 1
    ('nothing overdue'), so the overdue rule stayed silent; it is left out, as every unknown
    figure is, and the environment is unreachable (the could-not-verify rule)."""
    from prometheus_client.parser import text_string_to_metric_families

    (tmp_path / "spectral.toml").write_text(
        '[environments.lost]\nprovider = "local"\nposture = "pro"\nstate_dir = "lost"\n')
    (tmp_path / "lost").mkdir()
    (tmp_path / "lost" / "evidence").write_text("not a folder\n")
    prom = tmp_path / "spectral.prom"
    res = spectral("dr", "status", "--all", "--prom-file", str(prom), cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    samples = {s.name: s.value for f in text_string_to_metric_families(prom.read_text())
               for s in f.samples}
    assert samples["spectral_dr_reachable"] == 0.0
    assert "spectral_dr_ok" not in samples, samples
