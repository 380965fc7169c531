"""The regional-outage and provider-failure playbooks: restore the latest backup into a new
target, point the environment at it, run the provision command, and (on Pro and later) prepare
the re-invites, since auth.users does not transfer."""

from __future__ import annotations

import csv
import io
import shlex
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from spectral.confirm import Operator
from spectral.durable import write_atomic
from spectral.environment import Environment
from spectral.errors import CheckFailed, UsageError
from spectral.pg.conn import connect
from spectral.providers.base import Report
from spectral.recovery_target import LatestTarget
from spectral.runner import run
from spectral.target import Target

Action = Callable[[], str]


class Failover:
    def __init__(self, environment: Environment, target: Target, operator: Operator,
                 report: Report) -> None:
        self.environment, self.target, self.operator, self.report = (environment, target,
                                                                     operator, report)
        self.failover_dsn: str | None = None
        self.reinvite_files: list[str] = []

    def actions(self, name: str, alpha: bool
                ) -> Sequence[tuple[Action | None, str | Callable[[], str]]]:
        failover = (self._failover_target, "restore the latest backup into a new target")
        update = (lambda: self._update_dsn() + "; " + self._provision(),
                  "DSN reference, provision command")
        if name == "regional-outage":
            return [(None, "wait it out?"), failover, update] + ([] if alpha else [
                (None, "communicate the cutover; re-issue invites")])
        if name == "provider-failure":
            if alpha:
                return [failover, (None, "users re-authenticate"), (None, "point FastAPI")]
            return [failover, (None, "users re-authenticate"),
                    (self._reinvite, "re-invite list from core.users; auth.users left behind"),
                    (None, "point FastAPI at the new host")]
        raise UsageError(f"unknown playbook {name!r}")

    def _failover_target(self) -> str:
        copy = self.environment.provider.restore_new(LatestTarget(), self.operator, self.report)
        self.failover_dsn = copy.dsn
        return f"latest backup restored into a new target: {copy.what}, dsn {copy.dsn}"

    def _update_dsn(self) -> str:
        from spectral.config.secrets import is_secret_ref

        cfg, name, env = self.environment.spectral, self.environment.name, \
            self.environment.config
        dsn = self.failover_dsn or "the new target"
        if cfg.source is None or env.dsn is None or is_secret_ref(env.dsn):
            return (f"manual: point the {name} DSN reference (infra/environments.toml / the "
                    f"secret it names) at {dsn}")
        import tomlkit

        doc = tomlkit.parse(cfg.source.read_text())
        envs: Any = doc["environments"]
        envs[name]["dsn"] = dsn
        write_atomic(cfg.source, tomlkit.dumps(doc))
        return f"{cfg.source}: environments.{name}.dsn -> {dsn}"

    def _provision(self) -> str:
        command = self.environment.config.provision_command
        if not command:
            return "manual: no provision_command configured; run tools/provision/provision.sh"
        res = run(shlex.split(command), timeout=3600, check=False,
                  cwd=self.environment.spectral.base_dir)
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        if res.returncode != 0:
            raise CheckFailed(f"provision command exited {res.returncode}: {' | '.join(tail)}")
        return "provision command succeeded: " + " | ".join(tail)

    def _reinvite(self) -> str:
        """auth.users does not transfer: re-invite every core.users row, then leave auth behind
        in the new target (core.users repopulates from re-invite acceptance)."""
        dsn = self.failover_dsn
        if dsn is None:
            raise CheckFailed("no failover target to prepare")
        with connect(dsn) as conn:
            rows = conn.execute("select u.org_id, u.email::text, u.role::text, u.display_name "
                                "from core.users u order by u.email").fetchall()
            conn.execute("delete from auth.users")     # cascades to core.users, as the runbook
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        base = self.environment.ledger.dir / f"reinvites-{stamp}"
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["org_id", "email", "role", "display_name"])
        writer.writerows(rows)
        write_atomic(base.with_suffix(".csv"), out.getvalue())
        inserts = "".join(
            "insert into core.domain_invites (org_id, email, role, expires_at) values "
            f"({r[0]}, {_lit(r[1])}, {_lit(r[2])}, now() + interval '14 days');\n" for r in rows)
        write_atomic(base.with_suffix(".sql"), inserts)
        self.reinvite_files = [str(base.with_suffix(".csv")), str(base.with_suffix(".sql"))]
        return (f"{len(rows)} re-invites: {base.with_suffix('.csv')} and "
                f"{base.with_suffix('.sql')} (domain_invites rows); auth.users left behind")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
