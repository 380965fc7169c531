"""What is news, and telling the hooks. A drill that fails or cannot verify is news each time; a
status is news when an item becomes overdue (not while it stays overdue) or a provider stops
answering; either is news again when it recovers. What was last told of an environment is read
from its ledger's `alert` entries (each carries the state it told, `told`), so a cron job's
`dr status` alerts once, on any runner that shares the evidence store: no state file to lose or
to disagree with the evidence.

    alerts = after_drill(environment, result.to_json())
    notify(environment, alerts, warn=print)     # never raises: a hook that fails is a warning

Each delivery (sent or not) is a ledger entry: the hook's name, the event, the HTTP status or the
error. Never the URL: it is a secret reference resolved only to post."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from spectral.alerts.send import Delivery, post
from spectral.alerts.settings import AlertEvent, Webhook
from spectral.errors import SpectralError
from spectral.ledger.store import Entry, EntryKind
from spectral.redact import redact, redact_obj

if TYPE_CHECKING:
    from spectral.environment import Environment

BAD_DRILL = ("fail", "could_not_verify")


@dataclass(frozen=True)
class Alert:
    event: AlertEvent
    environment: str
    summary: str
    drill: dict[str, Any] | None = None      # the drill result's JSON
    status: dict[str, Any] | None = None     # the environment's status
    told: dict[str, Any] | None = None       # the state this alert tells (AlertState's fields)

    def body(self, fmt: str) -> dict[str, Any]:
        if fmt == "slack":
            icon = ":white_check_mark:" if self.event is AlertEvent.RECOVERED else ":warning:"
            return {"text": redact(f"{icon} spectral {self.environment}: {self.summary}")}
        body: dict[str, Any] = redact_obj({"version": 1, "event": self.event.value,
                           "environment": self.environment,
                           "at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "summary": self.summary, "drill": self.drill,
                           "status": self.status})
        return body


@dataclass(frozen=True)
class AlertRecord:
    """One alert to one hook, as the ledger keeps it."""

    KIND: ClassVar[EntryKind] = EntryKind.ALERT
    hook: str
    event: str
    format: str
    summary: str
    delivered: bool
    status: int | None
    error: str | None
    attempts: int
    told: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"hook": self.hook, "event": self.event, "format": self.format,
                "summary": self.summary, "delivered": self.delivered,
                "http_status": self.status, "error": self.error, "attempts": self.attempts,
                "told": self.told}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AlertRecord:
        told = d.get("told")
        return cls(str(d.get("hook")), str(d.get("event")), str(d.get("format")),
                   str(d.get("summary") or ""), bool(d.get("delivered")),
                   d.get("http_status"), d.get("error"), int(d.get("attempts") or 0),
                   told if isinstance(told, dict) else None)


@dataclass
class AlertState:
    """What was last told of one environment: the last drill outcome told, the items told
    overdue (until a recovery is told), whether its provider was last told answering."""

    drill: str | None = None
    overdue: list[str] = field(default_factory=list)
    reachable: bool = True

    def tell(self, told: dict[str, Any]) -> None:
        """Fold in what one alert told (only the fields it names)."""
        if "drill" in told:
            self.drill = told["drill"]
        if "overdue" in told:
            self.overdue = list(told["overdue"] or [])
        if "reachable" in told:
            self.reachable = bool(told["reachable"])


def told_state(entries: list[Entry], name: str) -> AlertState:
    """What the ledger's alert entries told of environment `name`, oldest first (an entry
    without `told`, such as a test alert, tells no state)."""
    state = AlertState()
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.kind is EntryKind.ALERT and entry.environment == name:
            told = AlertRecord.from_json(entry.data).told
            if told:
                state.tell(told)
    return state


def _load(environment: Environment) -> AlertState:
    return told_state(environment.ledger.entries(), environment.name)


def _hooks(environment: Environment) -> dict[str, Webhook]:
    return dict(environment.spectral.alerts.webhooks)


def after_drill(environment: Environment, result: dict[str, Any]) -> list[Alert]:
    """The alerts a drill's result makes (its JSON: `DrillResult.to_json`)."""
    if not _hooks(environment):
        return []
    state = _load(environment)
    name, outcome = environment.name, str(result.get("outcome"))
    what = f"{result.get('type', 'functional')} drill"
    alerts = []
    if outcome == "fail":
        alerts.append(Alert(AlertEvent.DRILL_FAILED, name,
                            f"{what} FAILED: {_reason(result)}", drill=result))
    elif outcome == "could_not_verify":
        alerts.append(Alert(AlertEvent.COULD_NOT_VERIFY, name,
                            f"{what} could not verify: {_reason(result)}", drill=result))
    elif any(c.get("outcome") == "warn" for c in result.get("checks") or []):
        # it passed (the restore matched its source) with a warning: the source's rows
        # drifted past their bound (it may have lost data upstream), a collation differs
        alerts.append(Alert(AlertEvent.DRILL_WARNED, name,
                            f"{what} passed with a warning: {_reason(result, 'warn')}",
                            drill=result))
    elif outcome == "pass" and state.drill in BAD_DRILL:
        alerts.append(Alert(AlertEvent.RECOVERED, name, f"{what} passed again", drill=result))
    return [replace(a, told={"drill": outcome}) for a in alerts]


def _reason(result: dict[str, Any], outcome: str | None = None) -> str:
    """The error, or the first checks that failed (or, with `outcome`, that had it)."""
    if result.get("error"):
        return str(result["error"])
    bad = [c for c in result.get("checks") or []
           if (c.get("outcome") == outcome if outcome else
               c.get("outcome") not in ("pass", "warn"))]
    return "; ".join(f"{c.get('name')}: {c.get('detail')}" for c in bad[:3]) or "see the ledger"


def after_status(environment: Environment, status: dict[str, Any],
                 reachable: bool = True) -> list[Alert]:
    """The alerts a status makes (`dr status`'s document, or a row of `--all`)."""
    if not _hooks(environment):
        return []
    state = _load(environment)
    name, overdue = environment.name, list(status.get("overdue") or [])
    new = [item for item in overdue if item not in state.overdue]
    alerts = []
    if new:
        alerts.append(Alert(AlertEvent.OVERDUE, name, f"now overdue: {', '.join(new)}",
                            status=status))
    if not reachable and state.reachable:
        alerts.append(Alert(AlertEvent.COULD_NOT_VERIFY, name, "the provider did not answer: "
                            f"{status.get('error') or 'unknown'}", status=status))
    was_bad = bool(state.overdue) or not state.reachable
    if was_bad and reachable and not overdue:
        alerts.append(Alert(AlertEvent.RECOVERED, name, "nothing is overdue and the provider "
                            "answers", status=status))
    # what was told overdue stays told until a recovery is: an item that clears and comes back
    # while others stay overdue is not news (nobody was told it cleared)
    recovered = reachable and not overdue
    told = {"overdue": [] if recovered else sorted(set(overdue) | set(state.overdue)),
            "reachable": reachable if recovered or not reachable else state.reachable}
    return [replace(a, told=told) for a in alerts]


Sent = tuple[str, Alert, Delivery]


def notify(environment: Environment, alerts: list[Alert],
           warn: Callable[[str], None], only: str | None = None) -> list[Sent]:
    """Post each alert to each hook that wants it (in parallel; each bounded by its deadline),
    record each in the ledger, and warn of each that was not delivered. Never raises."""
    hooks = _hooks(environment)
    pairs = [(name, hook, alert) for alert in alerts for name, hook in hooks.items()
             if (only is None or name == only) and hook.wants(alert.event, environment.name)]
    if not pairs:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(pairs))) as pool:
        deliveries = list(pool.map(lambda p: _deliver(environment, p[1], p[2]), pairs))
    sent = [(name, alert, d) for (name, _h, alert), d in zip(pairs, deliveries, strict=True)]
    for name, alert, d in sent:
        if not d.delivered:
            warn(f"warning: alert {alert.event.value} to hook {name!r} not delivered: "
                 f"{d.error}" + (f" (the last of {d.attempts} tries)" if d.attempts > 1 else ""))
        _record(environment, name, hooks[name], alert, d, warn)
    return sent


def _deliver(environment: Environment, hook: Webhook, alert: Alert) -> Delivery:
    from spectral.config.secrets import resolve_secret

    try:
        url = resolve_secret(hook.url, base_dir=environment.spectral.base_dir)
    except SpectralError as exc:
        return Delivery(None, f"its url: {exc.message}", 0)
    return post(url, alert.body(hook.format))


def _record(environment: Environment, name: str, hook: Webhook, alert: Alert, d: Delivery,
            warn: Callable[[str], None]) -> None:
    record = AlertRecord(name, alert.event.value, hook.format, alert.summary, d.delivered,
                         d.status, d.error, d.attempts, alert.told)
    try:
        environment.ledger.record(environment.name, record)
    except SpectralError as exc:
        warn(f"warning: alert to hook {name!r} not recorded in the ledger: {exc.message}")
