"""The regional-outage and provider-failure playbooks. A regional outage restores the latest
backup into a new target of the same provider, points the environment at it and runs the
provision command. A provider failure moves the protected schemas into a PostgreSQL elsewhere
(spectral dr exit: report, shims, logical copy, proof) and prepares the re-invites, since the
identities the old provider kept do not transfer. Where a step cannot be done for the team,
its message names the team's own tools (its runbook file's [tools])."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

from spectral.confirm import Operator
from spectral.durable import write_atomic
from spectral.environment import Environment
from spectral.errors import CheckFailed, UsageError
from spectral.providers.base import Report
from spectral.recovery_target import LatestTarget
from spectral.runner import run

Action = Callable[[], str]
Planned = tuple[Action, str | Callable[[], str]]


class Failover:
    def __init__(self, environment: Environment, live: str, operator: Operator,
                 report: Report, tools: Mapping[str, str]) -> None:
        self.environment, self.live, self.operator, self.report = (environment, live,
                                                                   operator, report)
        self.tools = tools
        self.failover_dsn: str | None = None
        self.reinvite_files: list[str] = []
        self.exit_to: str | None = None

    def actions(self, name: str) -> Mapping[str, Planned]:
        """(action, plan) of each automated step, by its key (catalog.py)."""
        if name == "regional-outage":
            return {"failover": (self._failover_target,
                                 "restore the latest backup into a new target"),
                    "repoint": (lambda: self._update_dsn() + "; " + self._provision(),
                                "DSN reference, provision command")}
        if name == "provider-failure":
            return {"exit": (self._exit, self._exit_plan),
                    "reinvite": (self._reinvite, "re-invite list from the moved tables; "
                                                 "identities stay behind")}
        raise UsageError(f"unknown playbook {name!r}")

    def _exit_to(self) -> str:
        to = self.exit_to or self.environment.config.exit_target
        if not to:
            raise UsageError("where is the PostgreSQL elsewhere? set exit_target for the "
                             "environment or pass --to (an environment, a DSN or a secret "
                             "reference)")
        return to

    def _exit_plan(self) -> str:
        from spectral.exit.where import describe_dsn, resolve_exit_target

        dsn = resolve_exit_target(self.environment.spectral, self._exit_to())
        return (f"move {', '.join(self.environment.config.schemas)} into {describe_dsn(dsn)} "
                f"(portability report, shims, pg_dump/pg_restore, proof; spectral dr exit)")

    def _exit(self) -> str:
        from spectral.exit.move import Exit, ExitRequest
        from spectral.exit.where import resolve_exit_target

        dsn = resolve_exit_target(self.environment.spectral, self._exit_to())
        result = Exit(self.environment, ExitRequest(dsn, source_dsn=self.live),
                      self.operator, self.report).run()
        self.failover_dsn = dsn
        self.reinvite_files = result.reinvites
        return result.summary

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
            return (f"manual: point the {name} DSN reference "
                    f"({self.tools['connection_settings']}, or the secret it names) at {dsn}")
        import tomlkit

        doc = tomlkit.parse(cfg.source.read_text())
        envs: Any = doc["environments"]
        envs[name]["dsn"] = dsn
        write_atomic(cfg.source, tomlkit.dumps(doc))
        return f"{cfg.source}: environments.{name}.dsn -> {dsn}"

    def _provision(self) -> str:
        command = self.environment.config.provision_command
        if not command:
            return f"manual: no provision_command configured; run {self.tools['provision']}"
        res = run(shlex.split(command), timeout=3600, check=False,
                  cwd=self.environment.spectral.base_dir)
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        if res.returncode != 0:
            raise CheckFailed(f"provision command exited {res.returncode}: {' | '.join(tail)}")
        return "provision command succeeded: " + " | ".join(tail)

    def _reinvite(self) -> str:
        """Identities do not transfer: every user of the moved tables is invited again (the
        exit wrote the list; rows stay, re-linked on acceptance, so nothing is lost)."""
        if self.failover_dsn is None:
            raise CheckFailed("no exit target to prepare the re-invites from")
        if not self.reinvite_files:     # written only by a proven exit, from its source
            return "no re-invite list: the exit found no identity the moved tables refer to"
        return (f"re-invites: {', '.join(self.reinvite_files)}; identities stayed with the "
                f"old provider, users sign in again")
