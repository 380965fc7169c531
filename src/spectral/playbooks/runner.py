"""`spectral dr playbook run NAME`: the runbook's playbook for the environment's posture tier as
steps. Automated steps run through the provider; manual steps are shown and confirmed. Each
step's start, end, outcome and the operator go into one incident entry in the ledger.
`--dry-run` prints the plan with the concrete targets and changes nothing."""

from __future__ import annotations

import csv
import getpass
import io
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.config.models import EnvironmentConfig, Posture, SpectralConfig
from spectral.confirm import Confirmer
from spectral.drills.contract import check_core_contract
from spectral.durable import write_atomic
from spectral.errors import CheckFailed, RefusedError, SpectralError, UsageError
from spectral.ledger import EntryKind, Ledger
from spectral.pg.conn import connect
from spectral.playbooks.catalog import playbook
from spectral.providers.base import RecoveryTarget, TargetKind
from spectral.providers.local.provider import LocalProvider
from spectral.providers.supabase.provider import SupabaseProvider
from spectral.runner import run
from spectral.target import Target


@dataclass
class Options:
    table: str | None = None
    target_xid: str | None = None
    target_time: str | None = None
    role: str | None = None
    operator: str = field(default_factory=getpass.getuser)


@dataclass
class Step:
    text: str
    automated: bool
    action: Callable[[], str] | None = None      # runs the step, returns what it did
    plan: str | Callable[[], str] = ""           # what it will do, with concrete targets

    def planned(self) -> str:
        """The plan with its targets resolved (read-only: find-damage, the WAL)."""
        if not callable(self.plan):
            return self.plan
        try:
            return self.plan()
        except SpectralError as exc:
            return f"could not be resolved yet: {exc.message}"


@dataclass
class StepRecord:
    number: int
    text: str
    automated: bool
    outcome: str
    detail: str
    started_at: str
    ended_at: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PlaybookRun:
    playbook: str
    environment: str
    posture: str
    operator: str
    dry_run: bool
    steps: list[StepRecord] = field(default_factory=list)
    outcome: str = "done"

    def to_json(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "environment": self.environment,
                "posture": self.posture, "operator": self.operator, "dry_run": self.dry_run,
                "outcome": self.outcome, "steps": [s.to_json() for s in self.steps],
                "summary": f"playbook {self.playbook}: {self.outcome}"}


class Plan:
    """Builds the concrete steps of one playbook for one environment."""

    def __init__(self, cfg: SpectralConfig, name: str, env: EnvironmentConfig,
                 provider: LocalProvider | SupabaseProvider, target: Target,
                 confirmer: Confirmer, opts: Options,
                 report: Callable[[str], None] = lambda _m: None) -> None:
        self.cfg, self.name, self.env = cfg, name, env
        self.local = provider if isinstance(provider, LocalProvider) else None
        self.supabase = provider if isinstance(provider, SupabaseProvider) else None
        self.report = report
        self.target, self.confirmer, self.opts = target, confirmer, opts
        self._resolved: dict[str, str] = {}
        self.failover_dsn: str | None = None
        self.reinvite_files: list[str] = []

    # -- building blocks --------------------------------------------------------------------
    def _damage_xid(self, ops: set[str]) -> str:
        from spectral.playbooks.damage import find_damage

        if self.opts.target_xid:
            return self.opts.target_xid
        if not self.opts.table:
            raise UsageError("this playbook needs --table (or --target-xid) to find the damage")
        with connect(self.target.conninfo) as conn:
            found = find_damage(self._local(), conn, self.opts.table, ops=ops)
        if not found:
            raise CheckFailed(f"no {'/'.join(sorted(ops))} of {self.opts.table} in the WAL "
                              f"archive")
        return str(found[-1].xid)

    def _local(self) -> LocalProvider:
        if self.local is None:
            raise UsageError("this step needs the WAL archive and base backups of a local "
                             "environment; Supabase does not expose them")
        return self.local

    def _losses(self, target: RecoveryTarget) -> list[str]:
        """What a rewind to `target` takes out of the live database, and the alternative."""
        if self.local is None:
            return ["every write after the target leaves the live database (Supabase does not "
                    "expose its WAL, so they cannot be listed)"]
        from spectral.playbooks.damage import describe_losses, writes_after

        with connect(self.target.conninfo) as conn:
            lost = writes_after(self.local, conn, target)
        lines = describe_losses(lost)
        later = [t for t in lost if target.kind is not TargetKind.XID
                 or str(t["xid"]) != target.value]
        if later and target.kind is TargetKind.XID and self.opts.table:
            lines.append(f"to keep them, repair only the damage instead: spectral dr salvage "
                         f"--table {self.opts.table} --before-xid {target.value}")
        return lines

    def _restore_in_place(self, target: RecoveryTarget) -> str:
        where = (f"Supabase project {self.supabase.ref}" if self.supabase is not None
                 else f"environment {self.name}")
        if not self.confirmer.confirm(
                f"Rewind {where} in place to {target.describe()}?",
                [f"{where} goes back to {target.describe()}"
                 + (" (the previous data directory is kept for --undo)"
                    if self.supabase is None else ""), *self._losses(target)]):
            raise RefusedError(f"the in-place restore of {where} was not confirmed; nothing "
                               f"was changed")
        if self.supabase is not None:
            if target.kind is not TargetKind.TIME:
                raise UsageError("Supabase restores to a time: pass --target-time, just before "
                                 "the damage")
            from spectral.recovery_target import parse_time

            sb = self.supabase.pitr_in_place(parse_time(str(target.value)), confirmed=True,
                                             report=self.report)
            matched = "schemas match" if sb["schemas_match_snapshot"] else "SCHEMAS DIFFER"
            counts = "; ".join(f"{t}: {c['before']} -> {c['after']} rows"
                               for t, c in sb["tables"].items()
                               if t in self.env.load_bearing_tables)
            return (f"project {sb['project']} restored in place to {sb['target']} in "
                    f"{sb['seconds']} s; {matched} the snapshot taken before; {counts}")
        done = self._local().restore_in_place(target, confirmed=True)
        return (f"restored in place to {done['target']} from {done['backup']}; previous data "
                f"kept at {done['previous']}")

    def _verify_contract(self) -> str:
        counts = []
        with connect(self.target.conninfo) as conn:
            intact, evidence = check_core_contract(conn)
            for t in self.env.load_bearing_tables:
                exists = conn.execute("select to_regclass(%s) is not null", (t,)).fetchone()
                if exists and exists[0]:
                    n = conn.execute(f"select count(*) from {t}").fetchone()
                    counts.append(f"{t}: {n[0] if n else 0:,} rows")
        if not intact:
            raise CheckFailed("the core contract is broken after the restore: "
                              + "; ".join(e for e in evidence if "MISSING" in e or "NOT" in e))
        return "core contract intact; " + "; ".join(counts)

    def _reseed(self) -> str:
        from spectral.reseed import reseed

        result = reseed(self.target, self.confirmer)
        return f"re-seeded: {sum(result.seed.rows.values()):,} rows, {result.author.rules} rules"

    def _failover_target(self) -> str:
        if self.supabase is not None:
            return ("manual: restore the latest backup into a new project (dashboard -> "
                    "Database -> Backups -> Restore to a new project) in a healthy region")
        inst = self._local().restore(RecoveryTarget(TargetKind.LATEST), keep=True)
        self.failover_dsn = inst.dsn
        return f"latest backup restored into a new target: instance {inst.id}, dsn {inst.dsn}"

    def _update_dsn(self) -> str:
        from spectral.config.secrets import is_secret_ref

        dsn = self.failover_dsn or "the new target"
        if self.cfg.source is None or self.env.dsn is None or is_secret_ref(self.env.dsn):
            return (f"manual: point the {self.name} DSN reference (infra/environments.toml / the "
                    f"secret it names) at {dsn}")
        import tomlkit

        doc = tomlkit.parse(self.cfg.source.read_text())
        envs: Any = doc["environments"]
        envs[self.name]["dsn"] = dsn
        write_atomic(self.cfg.source, tomlkit.dumps(doc))
        return f"{self.cfg.source}: environments.{self.name}.dsn -> {dsn}"

    def _provision(self) -> str:
        if not self.env.provision_command:
            return "manual: no provision_command configured; run tools/provision/provision.sh"
        res = run(shlex.split(self.env.provision_command), timeout=3600, check=False,
                  cwd=self.cfg.base_dir)
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
        base = self.cfg.state_dir(self.name) / "evidence" / f"reinvites-{stamp}"
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

    # -- the playbooks ------------------------------------------------------------------------
    def _xid_plan(self, what: str, label: str) -> Callable[[], str]:
        def text() -> str:
            target = RecoveryTarget(TargetKind.XID, self._xid(what), exclusive=True)
            return (f"in-place restore to just before {label}: --target-xid {target.value} "
                    f"--exclusive; " + " ".join(self._losses(target)))
        return text

    def _actions(self, name: str, alpha: bool
                 ) -> Sequence[tuple[Callable[[], str] | None, str | Callable[[], str]]]:
        """One (action, plan) per runbook step of the tier; None is a manual step."""
        verify = (self._verify_contract, "core contract and load-bearing counts")
        reseed = (self._reseed, "reset, seed, author")
        failover = (self._failover_target, "restore the latest backup into a new target")
        if name == "self-inflicted":
            if alpha:
                return [(None, "confirm the affected data is regenerable"), reseed, verify]
            if self.supabase is not None:
                return [(lambda: f"restoring to {self._time_target().value}: find-damage reads "
                                 f"the WAL archive, which Supabase does not expose",
                         f"the damage is before {self.opts.target_time}"),
                        (lambda: self._restore_in_place(self._time_target()),
                         f"in-place PITR to {self.opts.target_time}"), verify]
            return [(lambda: f"damaging transaction {self._xid('damage')}",
                     f"find-damage on {self.opts.table}"),
                    (lambda: self._restore_in_place(RecoveryTarget(
                        TargetKind.XID, self._xid("damage"), exclusive=True)),
                     self._xid_plan("damage", "the damaging transaction")), verify]
        if name == "schema-drop":
            if alpha:
                return [reseed, verify]
            return [(lambda: self._restore_in_place(self._before_drop()),
                     self._xid_plan("drop", f"the DROP of {self.opts.table}")
                     if self.supabase is None else
                     f"in-place restore to just before the DROP of {self.opts.table}"),
                    (self._verify_contract, "core contract (fails loudly when broken)")]
        if name == "compromised-credential":
            undo = reseed if alpha else (lambda: self._restore_in_place(self._time_target()),
                                         f"in-place restore to {self.opts.target_time}")
            return [(None, "rotate the credential"), (self._blast, f"role {self.opts.role}"),
                    undo, (lambda: "recorded with this run", "incident entry in the ledger")]
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

    def steps(self, name: str) -> list[Step]:
        texts = playbook(name).steps(self.env.posture)
        actions = self._actions(name, self.env.posture is Posture.ALPHA)
        assert len(actions) == len(texts), (name, len(actions), len(texts))
        return [Step(t.text, a is not None, a, p) for t, (a, p) in zip(texts, actions, strict=True)]

    def _xid(self, what: str) -> str:
        if what not in self._resolved:
            ops = {"drop"} if what == "drop" else {"delete", "update", "truncate"}
            self._resolved[what] = self._damage_xid(ops)
        return self._resolved[what]

    def _before_drop(self) -> RecoveryTarget:
        if self.supabase is not None:
            return self._time_target()
        return RecoveryTarget(TargetKind.XID, self._xid("drop"), exclusive=True)

    def _time_target(self) -> RecoveryTarget:
        if not self.opts.target_time:
            raise UsageError("this playbook needs --target-time: just before the damage or "
                             "the suspected compromise")
        return RecoveryTarget(TargetKind.TIME, self.opts.target_time)

    def _blast(self) -> str:
        from spectral.playbooks.blast import blast_radius

        if not self.opts.role:
            return "manual: no --role given; run spectral dr blast-radius --role R"
        with connect(self.target.conninfo) as conn:
            r = blast_radius(conn, self.opts.role)
        warnings = "; ".join(r.warnings) or "no special attributes"
        return (f"{self.opts.role}: {len(r.tables)} table(s), {len(r.owned)} owned object(s), "
                f"{len(r.policies)} policy(ies); {warnings}")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def run_playbook(plan: Plan, name: str, *, dry_run: bool,
                 report: Callable[[str], None]) -> PlaybookRun:
    result = PlaybookRun(name, plan.name, plan.env.posture.value, plan.opts.operator, dry_run)
    steps = plan.steps(name)
    for number, step in enumerate(steps, start=1):
        started = datetime.now(UTC).isoformat(timespec="seconds")
        kind = "automated" if step.automated else "manual"
        planned = step.planned() if dry_run or not callable(step.plan) else ""
        report(f"step {number}/{len(steps)} ({kind}): {step.text}"
               + (f" -> {planned}" if planned else ""))
        if dry_run:
            outcome, detail = "planned", planned
        elif not step.automated:
            if not plan.confirmer.confirm(f"Step {number} done: {step.text}?", []):
                outcome, detail = "not confirmed", "stopped here"
                result.outcome = "stopped"
            else:
                outcome, detail = "confirmed", ""
        else:
            assert step.action is not None
            try:
                outcome, detail = "done", step.action()
            except RefusedError as exc:
                outcome, detail = "not confirmed", exc.message
                result.outcome = "stopped"
            except SpectralError as exc:
                outcome, detail = "failed", exc.message
                result.outcome = "failed"
        result.steps.append(StepRecord(number, step.text, step.automated, outcome, detail,
                                       started, datetime.now(UTC).isoformat(timespec="seconds")))
        if detail:
            report(f"    {outcome}: {detail}")
        if result.outcome in ("failed", "stopped"):
            break
    if dry_run:
        result.outcome = "planned"   # a dry run changes nothing
    else:
        Ledger(plan.cfg.state_dir(plan.name) / "evidence").append(
            EntryKind.INCIDENT, plan.name, result.to_json())
    return result


def require_yes(confirmer: Confirmer, name: str) -> None:
    if not confirmer.confirm(f"Run the {name} playbook? Automated steps change the database.",
                             []):
        raise RefusedError(f"playbook {name} not confirmed; nothing was changed")


def path_of(p: str) -> Path:
    return Path(p)
