"""Alerts against a webhook the test serves on 127.0.0.1: delivered, a 500 then 200 (retried),
a timeout, a refused connection; the ledger entries; the URL (a secret) never shown or kept."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import spectral
from spectral.alerts.send import post

SECRET = "T0KENsecret4f9c2e"     # the part of a hook's URL that is its credential


class Hook:
    """A webhook: answers each POST with the next scripted reply (a status, or "sleep:S" then
    200), 200 when the script is used up; keeps every body."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                hook.bodies.append(json.loads(self.rfile.read(length)))
                hook.paths.append(self.path)
                reply = hook.script.pop(0) if hook.script else "200"
                if reply.startswith("sleep:"):
                    time.sleep(float(reply[6:]))
                    reply = "200"
                self.send_response(int(reply))
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{name}/{SECRET}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def test_post_retries_within_its_deadline(hook: Hook) -> None:
    hook.script = ["200"]
    d = post(hook.url("a"), {"x": 1})
    assert (d.delivered, d.status, d.attempts) == (True, 200, 1)
    hook.script = ["500", "200"]
    d = post(hook.url("a"), {"x": 2})
    assert (d.delivered, d.status, d.attempts) == (True, 200, 2)
    hook.script = ["404"]               # an answer that another try will not change
    d = post(hook.url("a"), {"x": 3})
    assert (d.delivered, d.status, d.attempts, d.error) == (False, 404, 1, "HTTP 404 Not Found")
    hook.script = ["sleep:1.5", "sleep:1.5", "sleep:1.5"]
    started = time.monotonic()
    d = post(hook.url("a"), {"x": 4}, try_timeout=0.3, deadline=2.0)
    assert not d.delivered and d.status is None and d.error is not None
    assert d.error.startswith("timed out") and d.attempts >= 2
    assert time.monotonic() - started < 3.0
    pauses: list[float] = []
    d = post(f"http://127.0.0.1:{closed_port()}/hooks/{SECRET}", {"x": 5}, sleep=pauses.append)
    assert (d.delivered, d.status, d.attempts) == (False, None, 3)
    assert d.error == "no answer (ConnectError)" and pauses == [0.5, 1.0]   # backoff
    hook.script = []


def _config(work: Path, hook: Hook) -> dict[str, str]:
    dead = closed_port()
    (work / "spectral.toml").write_text(
        '[environments.analytics]\nprovider = "dsn"\n'
        f'dsn = "postgresql://spectral@127.0.0.1:{dead}/analytics"\n'
        '[alerts.webhooks.oncall]\nurl = "env:HOOK_ONCALL"\n'
        '[alerts.webhooks.chat]\nurl = "env:HOOK_CHAT"\nformat = "slack"\n'
        'events = ["drill_failed", "recovered"]\n'
        '[alerts.webhooks.down]\nurl = "env:HOOK_DOWN"\n')
    return {"HOOK_ONCALL": hook.url("oncall"), "HOOK_CHAT": hook.url("chat"),
            "HOOK_DOWN": f"http://127.0.0.1:{dead}/hooks/{SECRET}"}


def _alerts(work: Path) -> list[dict[str, Any]]:
    ledger = next(work.rglob("ledger.jsonl"))
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    return [e["data"] for e in entries if e["kind"] == "alert"]


def _no_secret(work: Path, *outputs: str) -> None:
    assert all(SECRET not in o for o in outputs), "a hook's URL was printed"
    for path in work.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), f"a hook's URL is in {path}"


def test_alerts_test_command_and_drill_alerts(work_dir: Path, hook: Hook) -> None:
    env = _config(work_dir, hook)
    res = spectral("dr", "alerts", "test", cwd=work_dir, env=env)
    assert res.returncode == 1, res.stderr          # the hook "down" is not reached
    assert "oncall: delivered (HTTP 200) after 1 attempt(s)" in res.stdout
    assert "chat: delivered (HTTP 200)" in res.stdout
    assert "down: NOT delivered: no answer (ConnectError) after 3 attempt(s)" in res.stdout
    assert "warning: alert test to hook 'down' not delivered" in res.stderr
    assert {b.get("event") for b in hook.bodies[-2:]} >= {"test"}
    assert any("text" in b and "test alert" in b["text"] for b in hook.bodies[-2:])
    recorded = {a["hook"]: a for a in _alerts(work_dir)}
    assert recorded["oncall"]["delivered"] and recorded["oncall"]["http_status"] == 200
    assert recorded["down"] == {**recorded["down"], "delivered": False, "http_status": None,
                                "error": "no answer (ConnectError)", "attempts": 3}
    res2 = spectral("dr", "alerts", "test", "--hook", "oncall", "--json", cwd=work_dir, env=env)
    assert res2.returncode == 0 and [d["hook"] for d in json.loads(res2.stdout)] == ["oncall"]
    _drill_alerts(work_dir, env, hook)
    _no_secret(work_dir, res.stdout, res.stderr, res2.stdout, res2.stderr)


def _drill_alerts(work: Path, env: dict[str, str], hook: Hook) -> None:
    """A failed drill goes to the hooks that want drill_failed; the next pass is a recovery."""
    import os

    from spectral.alerts.notify import after_drill, notify
    from spectral.config.load import load_config
    from spectral.environment import open_environment

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        environment = open_environment(load_config(None, cwd=work), "analytics")
        warnings: list[str] = []
        failed = {"type": "functional", "outcome": "fail", "error": "row counts differ",
                  "checks": [], "rto_seconds": 3.0}
        hook.bodies.clear()
        sent = notify(environment, after_drill(environment, failed), warnings.append)
        assert sorted(name for name, _a, _d in sent) == ["chat", "down", "oncall"]
        body = next(b for b in hook.bodies if "event" in b)
        assert body["event"] == "drill_failed" and body["drill"] == failed
        slack = next(b for b in hook.bodies if "text" in b)
        assert "functional drill FAILED: row counts differ" in slack["text"]
        assert warnings == ["warning: alert drill_failed to hook 'down' not delivered: "
                            "no answer (ConnectError) (the last of 3 tries)"]
        again = after_drill(environment, {**failed, "outcome": "pass", "error": None})
        assert [a.event.value for a in again] == ["recovered"]
        notify(environment, again, warnings.append)
        assert after_drill(environment, {**failed, "outcome": "pass"}) == []   # told once
        drifted = {**failed, "outcome": "pass", "error": None, "checks": [
            {"name": "drift", "outcome": "warn", "detail": "core.users 4000 -> 400 (-90%)"}]}
        warned = after_drill(environment, drifted)      # the source may have lost data
        assert [(a.event.value, a.summary) for a in warned] == [
            ("drill_warned", "functional drill passed with a warning: drift: core.users "
                             "4000 -> 400 (-90%)")]
        _told_from_the_ledger(environment, warnings)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    events = [(a["hook"], a["event"], a["delivered"]) for a in _alerts(work)]
    assert ("oncall", "drill_failed", True) in events and ("down", "drill_failed", False) \
        in events


def _told_from_the_ledger(environment: Any, warnings: list[str]) -> None:
    """What was told is the ledger's: a state file, deleted or contradicting, changes nothing;
    an alert computed but never sent is still news."""
    from spectral.alerts.notify import after_status, notify, told_state

    status = {"overdue": ["Tabletop review"], "error": "cannot connect"}
    first = after_status(environment, status, reachable=False)
    assert [a.event.value for a in first] == ["overdue", "could_not_verify"]
    assert [a.event.value for a in after_status(environment, status, False)] == [
        "overdue", "could_not_verify"]                    # not sent yet: still news
    notify(environment, first, warnings.append)
    stale = environment.state_dir / "alert-state.json"     # last session's file, contradicting
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text('{"version": 1, "drill": "fail", "overdue": [], "reachable": true}\n')
    assert after_status(environment, status, reachable=False) == []
    stale.unlink()
    assert after_status(environment, status, reachable=False) == []
    state = told_state(environment.ledger.entries(), environment.name)
    assert (state.drill, state.overdue, state.reachable) == ("pass", ["Tabletop review"], False)
    assert [a.event.value for a in after_status(environment, {"overdue": []}, True)] == [
        "recovered"]
    assert not (environment.state_dir / "alert-state.json").exists()


@pytest.mark.parametrize(("hook", "expected"), [
    ('url = "https://hooks.slack.com/services/T0/B0/x"', "secret reference"),
    ('url = "env:H"\nformat = "teams"', "format"),
    ('url = "env:H"\nevents = ["test"]', "'test' is not an event to choose"),
    ('url = "env:H"\nenvironments = ["nowhere"]', "not environments of this file: nowhere"),
])
def test_a_webhook_is_checked_when_the_file_is_read(work_dir: Path, hook: str,
                                                    expected: str) -> None:
    from spectral.config.load import load_config
    from spectral.errors import ConfigError

    (work_dir / "spectral.toml").write_text(
        f'[environments.a]\nprovider = "dsn"\ndsn = "postgresql:///a"\n'
        f'[alerts.webhooks.oncall]\n{hook}\n')
    with pytest.raises(ConfigError, match=expected) as exc:
        load_config(None, cwd=work_dir)
    assert "hooks.slack.com" not in str(exc.value)      # a pasted URL is not echoed
