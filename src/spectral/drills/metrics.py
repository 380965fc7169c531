"""`dr status --prom-file`: the status's figures as Prometheus gauges for node_exporter's
textfile collector, written by prometheus_client (its textfile writer escapes label values and
replaces the file atomically). `dr status --all --prom-file` writes every environment's figures
in one exposition, each series labelled with its `environment`. The alert rules over these
figures are docs/prometheus/spectral-rules.yml (checked by promtool in
tests/test_prometheus_rules.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Figure = tuple[str, str, float, dict[str, str]]     # name, help, value, labels
OUTCOMES = ("pass", "fail", "could_not_verify")


def figures(status: dict[str, Any]) -> list[Figure]:
    """What `--prom-file` exports: each gauge with its value and labels (a figure that is not
    known, such as the RTO before any drill, is left out)."""
    env = status["environment"]
    out: list[Figure] = []

    def metric(name: str, help_text: str, value: float | None,
               labels: dict[str, str] | None = None) -> None:
        if value is not None:
            out.append((name, help_text, float(value), {"environment": env, **(labels or {})}))

    metric("spectral_dr_status_timestamp_seconds", "When the status was judged (its cron "
           "job ran).", datetime.fromisoformat(status["at"]).timestamp())
    if "reachable" in status:
        metric("spectral_dr_reachable", "1 when the provider answered (dr status --all).",
               1.0 if status["reachable"] else 0.0)
    metric("spectral_dr_rto_target_seconds", "RTO target of the posture tier.",
           status["targets"]["rto_seconds"])
    metric("spectral_dr_rpo_target_seconds", "RPO target of the posture tier.",
           status["targets"]["rpo_seconds"])
    metric("spectral_dr_rto_seconds", "RTO measured by the last drill.",
           status["measured"]["rto_seconds"])
    metric("spectral_dr_rpo_seconds", "RPO measured by the last drill.",
           status["measured"]["rpo_seconds"])
    last = status["last_drill"]
    if last:
        metric("spectral_dr_last_drill_timestamp_seconds", "When the last drill ran.",
               datetime.fromisoformat(last["at"]).timestamp())
        metric("spectral_dr_last_drill_passed", "1 when the last drill passed, else 0.",
               1.0 if last["outcome"] == "pass" else 0.0)
        for outcome in OUTCOMES:
            metric("spectral_dr_last_drill_outcome", "1 for the last drill's outcome.",
                   1.0 if last["outcome"] == outcome else 0.0, {"outcome": outcome})
    for item in status["cadence"]:
        metric("spectral_dr_overdue", "1 when a cadence item is overdue.",
               1.0 if item["state"] == "overdue" else 0.0, {"item": item["name"]})
    metric("spectral_dr_backup_age_seconds", "Age of the newest base backup.",
           status["backup"]["age_seconds"])
    if status["wal"] and "rpo_bytes" in status["wal"]:
        metric("spectral_dr_wal_lag_bytes", "Committed WAL not yet in the repository.",
               status["wal"]["rpo_bytes"])
    if status["ledger"] is None:           # the evidence store could not be read: unknown
        return out
    metric("spectral_dr_ledger_intact", "1 when the ledger's hash chain verifies.",
           1.0 if status["ledger"]["intact"] else 0.0)
    metric("spectral_dr_ok", "1 when nothing is overdue.", 0.0 if status["overdue"] else 1.0)
    return out


Statuses = dict[str, Any] | list[dict[str, Any]]


def registry(statuses: Statuses) -> CollectorRegistry:
    """The figures of one status (or of each row of `--all`) as gauges in a registry of their
    own: one family per name, a series per environment (prometheus_client escapes the label
    values: an item or environment name may hold a quote, a backslash or a newline)."""
    rows = statuses if isinstance(statuses, list) else [statuses]
    families: dict[str, GaugeMetricFamily] = {}
    for name, help_text, value, labels in (f for row in rows for f in figures(row)):
        keys = sorted(labels)
        family = families.setdefault(name, GaugeMetricFamily(name, help_text, labels=keys))
        family.add_metric([labels[k] for k in keys], value)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Families(list(families.values())))
    return reg


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def prometheus(statuses: Statuses) -> str:
    """The figures in Prometheus text format, for node_exporter's textfile collector."""
    return generate_latest(registry(statuses)).decode()


def write_prometheus(statuses: Statuses, path: Path) -> None:
    """prometheus_client's textfile writer: a temporary file renamed over the old one, so the
    collector never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry(statuses))
