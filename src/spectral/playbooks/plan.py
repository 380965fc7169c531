"""The concrete steps of one playbook for one environment. What a step does depends on what the
provider can do (its capabilities), never on which provider it is: with the WAL archive the
damage is found and the rewind stops just before it; without, the operator names the time."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from spectral.config.models import Posture
from spectral.confirm import Operator
from spectral.drills.contract import check_contract
from spectral.drills.result import DrillOutcome
from spectral.environment import Environment
from spectral.errors import CheckFailed, RefusedError, SpectralError, UsageError
from spectral.pg.conn import connect
from spectral.playbooks import failover
from spectral.playbooks.catalog import playbook
from spectral.providers.base import Report
from spectral.providers.capabilities import archive_of
from spectral.recovery_target import RecoveryTarget, TargetKind, TimeTarget, XidTarget
from spectral.runbook.load import load_runbook
from spectral.runbook.model import Runbook

Action = Callable[[], str]
Planned = tuple[Action, str | Callable[[], str]]


@dataclass
class Options:
    table: str | None = None
    target_xid: int | None = None
    target_time: datetime | None = None
    role: str | None = None
    operator: str = field(default_factory=getpass.getuser)
    exit_to: str | None = None          # provider-failure: where the schemas go


@dataclass
class Step:
    text: str
    automated: bool
    action: Action | None = None                 # runs the step, returns what it did
    plan: str | Callable[[], str] = ""           # what it will do, with concrete targets

    def planned(self) -> str:
        """The plan with its targets resolved (read-only: find-damage, the WAL)."""
        if not callable(self.plan):
            return self.plan
        try:
            return self.plan()
        except SpectralError as exc:
            return f"could not be resolved yet: {exc.message}"


class Plan:
    """Builds the concrete steps of one playbook for one environment."""

    def __init__(self, environment: Environment, live: str, confirmer: Operator,
                 opts: Options, report: Report = lambda _m: None,
                 book: Runbook | None = None) -> None:
        """`live`: the environment's database, opened by the caller
        (`environment.database()`); `book`: the team's runbook, read from beside the
        environment's configuration when not given."""
        self.environment, self.provider = environment, environment.provider
        self.live, self.confirmer, self.opts, self.report = live, confirmer, opts, report
        self._resolved: dict[str, int] = {}
        self.book = book or load_runbook(environment.spectral)    # the team's words, tools
        self.failover = failover.Failover(environment, live, confirmer, report,
                                          self.book.tool_names())
        self.failover.exit_to = opts.exit_to

    @property
    def reinvite_files(self) -> list[str]:
        return self.failover.reinvite_files

    @property
    def has_wal(self) -> bool:
        return self.provider.wal_archive() is not None

    # -- building blocks --------------------------------------------------------------------
    def _damage_xid(self, ops: set[str]) -> int:
        from spectral.playbooks.damage import find_damage

        if self.opts.target_xid is not None:
            return self.opts.target_xid
        if not self.opts.table:
            raise UsageError("this playbook needs --table (or --target-xid) to find the damage")
        with connect(self.live) as conn:
            found = find_damage(archive_of(self.provider, "finding the damage"), conn,
                                self.opts.table, ops=ops)
        if not found:
            raise CheckFailed(f"no {'/'.join(sorted(ops))} of {self.opts.table} in the WAL "
                              f"archive")
        return found[-1].xid

    def _losses(self, target: RecoveryTarget) -> list[str]:
        """What a rewind to `target` takes out of the live database, and the alternative."""
        if not self.has_wal:
            return [f"every write after the target leaves the live database ({self.provider.kind}"
                    f" does not expose its WAL, so they cannot be listed)"]
        from spectral.playbooks.damage import describe_losses, writes_after

        with connect(self.live) as conn:
            lost = writes_after(archive_of(self.provider, "listing the losses"), conn, target)
        lines = describe_losses(lost)
        later = [t for t in lost if not isinstance(target, XidTarget) or t["xid"] != target.xid]
        if later and isinstance(target, XidTarget) and self.opts.table:
            lines.append(f"to keep them, repair only the damage instead: spectral dr salvage "
                         f"--table {self.opts.table} --before-xid {target.xid}")
        return lines

    def _restore_in_place(self, target: RecoveryTarget) -> str:
        where = self.provider.describe()
        undo = self.provider.in_place_undo() is not None
        if not self.confirmer.confirm(
                f"Rewind {where} in place to {target.describe()}?",
                [f"{where} goes back to {target.describe()}"
                 + (" (the previous data directory is kept for --undo)" if undo else ""),
                 *self._losses(target)]):
            raise RefusedError(f"the in-place restore of {where} was not confirmed; nothing "
                               f"was changed")
        self.environment.ledger.check_appendable()   # a rewind is always on record
        done = self.provider.restore_in_place(target, confirmed=True, report=self.report)
        try:
            self.environment.record_owed()
        except SpectralError as exc:   # done all the same: the entry waits for the repair
            self.report(f"the in-place restore is done but not recorded yet: {exc.message}")
        counts = "; ".join(f"{t}: {b} -> {a} rows" for t, (b, a) in done.tables.items()
                           if t in self.environment.config.load_bearing_tables)
        return (f"{done.where} restored in place to {done.target}"
                + (f" from {done.backup}" if done.backup else "")
                + f" in {done.seconds:.1f} s; {done.detail}" + (f"; {counts}" if counts else ""))

    def _verify_contract(self) -> str:
        counts = []
        with connect(self.live) as conn:
            check = check_contract(conn, self.environment.config.contract)
            for t in self.environment.config.load_bearing_tables:
                exists = conn.execute("select to_regclass(%s) is not null", (t,)).fetchone()
                if exists and exists[0]:
                    n = conn.execute(f"select count(*) from {t}").fetchone()
                    counts.append(f"{t}: {n[0] if n else 0:,} rows")
        if check.outcome is DrillOutcome.FAIL:
            raise CheckFailed("the contract is broken after the restore: " + "; ".join(
                e for e in check.evidence if "MISSING" in e or "NOT" in e or "gone" in e))
        said = ("contract intact" if check.outcome is DrillOutcome.PASS
                else "contract not configured")
        return f"{said}; " + "; ".join(counts)

    def _reseed(self) -> str:
        from spectral.reseed import reseed

        result = reseed(self.environment, self.live, self.confirmer)
        return f"re-seeded: {sum(result.seed.rows.values()):,} rows, {result.author.rules} rules"

    # -- targets ------------------------------------------------------------------------------
    def _xid(self, what: str) -> int:
        if what not in self._resolved:
            ops = {"drop"} if what == "drop" else {"delete", "update", "truncate"}
            self._resolved[what] = self._damage_xid(ops)
        return self._resolved[what]

    def _before(self, what: str) -> RecoveryTarget:
        """Just before the damage: found in the WAL, or the time the operator names."""
        if self.has_wal:
            return XidTarget(self._xid(what), exclusive=True)
        return self._time_target()

    def _time_target(self) -> TimeTarget:
        if not self.opts.target_time:
            raise UsageError("this playbook needs --target-time: just before the damage or "
                             "the suspected compromise")
        return TimeTarget(self.opts.target_time)

    def _before_plan(self, what: str, label: str) -> Callable[[], str]:
        def text() -> str:
            target = self._before(what)
            flags = (f"--target-xid {target.value} --exclusive"
                     if target.kind is TargetKind.XID else f"--target-time {target.value}")
            return (f"in-place restore to just before {label}: {flags}; "
                    + " ".join(self._losses(target)))
        return text

    def _blast(self) -> str:
        from spectral.playbooks.blast import blast_radius

        if not self.opts.role:
            return "manual: no --role given; run spectral dr blast-radius --role R"
        with connect(self.live) as conn:
            r = blast_radius(conn, self.opts.role)
        warnings = "; ".join(r.warnings) or "no special attributes"
        return (f"{self.opts.role}: {len(r.tables)} table(s), {len(r.owned)} owned object(s), "
                f"{len(r.policies)} policy(ies); {warnings}")

    # -- the playbooks ------------------------------------------------------------------------
    def _actions(self, name: str, alpha: bool) -> Mapping[str, Planned]:
        """(action, plan) of each automated step of the tier, by its key (catalog.py)."""
        verify = (self._verify_contract, "the contract and load-bearing counts")
        reseed = (self._reseed, "reset, seed, author")
        if name == "self-inflicted":
            if alpha:
                return {"reseed": reseed, "verify": verify}
            return {"find-damage": self._find_damage_step(),
                    "rewind": (lambda: self._restore_in_place(self._before("damage")),
                               self._before_plan("damage", "the damaging transaction")),
                    "verify": verify}
        if name == "schema-drop":
            contract = (self._verify_contract, "the contract (fails loudly when broken)")
            if alpha:
                return {"reseed": reseed, "contract": contract}
            return {"rewind": (lambda: self._restore_in_place(self._before("drop")),
                               self._before_plan("drop", f"the DROP of {self.opts.table}")),
                    "contract": contract}
        if name == "compromised-credential":
            undo = {"reseed": reseed} if alpha else {"rewind": (
                lambda: self._restore_in_place(self._time_target()),
                f"in-place restore to {self.opts.target_time}")}
            return {"blast-radius": (self._blast, f"role {self.opts.role}"), **undo,
                    "record": (lambda: "recorded with this run", "incident entry in the ledger")}
        return self.failover.actions(name)

    def _find_damage_step(self) -> tuple[Action, str]:
        if self.has_wal:
            return (lambda: f"damaging transaction {self._xid('damage')}",
                    f"find-damage on {self.opts.table}")
        return (lambda: f"restoring to {self._time_target().value}: find-damage reads the WAL "
                        f"archive, which {self.provider.describe()} does not expose",
                f"the damage is before {self.opts.target_time}")

    def steps(self, name: str) -> list[Step]:
        """The playbook's steps in the team's words; each automated one with its action."""
        posture = self.environment.config.posture
        actions = self._actions(name, posture is Posture.ALPHA)
        out = []
        for step in playbook(name, self.book).steps(posture):
            if not step.automated:
                out.append(Step(step.text, False))
                continue
            action, plan = actions[step.key]
            out.append(Step(step.text, True, action, plan))
        return out
