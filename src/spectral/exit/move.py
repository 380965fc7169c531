"""The exit: the protected schemas moved, logically, into a PostgreSQL elsewhere, and proven.

1. The source: the live database when it answers, else a restored copy (or the one given).
2. The portability report against the target; any refusal stops here, before anything is
   written. The target's protected schemas must be empty.
3. One snapshot of the source, exported and held: pg_dump and the source's fingerprint both
   read it, so the proof compares the same instant even on a live source.
4. Shims, roles and extensions created on the target, then pre-data, data (in parallel),
   the ids the protected tables refer to into identity shims, post-data, FORCE RLS last.
   Every step registers its undo: a failure leaves the target as it was.
5. Proof: the source's fingerprint, with the planned differences applied, against the
   target's (catalog and content); the re-invite list; one ledger entry with the report, the
   planned differences, the comparison and the time of dump, restore and verify."""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from spectral.confirm import Operator
from spectral.environment import Environment
from spectral.errors import CheckFailed, ConnectError, RefusedError, SpectralError, UsageError
from spectral.exit import portability
from spectral.exit.portability import Plan, Report, TargetFacts
from spectral.exit.proof import prove
from spectral.exit.reinvite import read_reinvites, write_reinvites
from spectral.exit.transfer import Connection, Restore, dump
from spectral.exit.where import describe_dsn
from spectral.exit.writes import (
    Journal,
    execute,
    fill_identity_shims,
    ident,
    recover,
    schema_exists,
    shim_statements,
    target_parts,
)
from spectral.ledger import EntryKind
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.conn import connect
from spectral.providers.base import Copy, CopyRequest
from spectral.providers.base import Report as Say
from spectral.recovery_target import LatestTarget, RecoveryTarget
from spectral.undo import UndoStack, crash_point
from spectral.verify.compare import Outcome
from spectral.verify.content import Method
from spectral.verify.document import Fingerprint
from spectral.verify.fingerprint import Options, retake, take


class ExitOutcome(StrEnum):
    PROVEN = "proven"            # moved, and the proof found nothing unplanned
    DIFFERS = "differs"          # moved, but the proof found differences: kept, named
    REFUSED = "refused"          # nothing written
    FAILED = "failed"            # undone


@dataclass(frozen=True)
class ExitRequest:
    target_dsn: str
    source_dsn: str | None = None            # a copy already restored (or any source)
    from_copy: RecoveryTarget | None = None  # restore a copy to this point first
    copy: CopyRequest = field(default_factory=CopyRequest)
    jobs: int = 2


@dataclass
class ExitResult:
    environment: str
    outcome: ExitOutcome
    source: str
    target: str
    report: dict[str, Any] | None = None
    planned: list[str] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    reinvites: list[str] = field(default_factory=list)
    undone: list[str] = field(default_factory=list)    # what a killed exit had written
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "outcome": self.outcome.value}

    @property
    def summary(self) -> str:
        moved = f"{self.source} -> {self.target}"
        if self.outcome is ExitOutcome.PROVEN:
            return (f"provider exit {moved}: proven (dump {self.timings.get('dump', 0):.1f} s, "
                    f"restore {self.timings.get('restore', 0):.1f} s, verify "
                    f"{self.timings.get('verify', 0):.1f} s)")
        return f"provider exit {moved}: {self.outcome.value}" + (
            f": {self.error}" if self.error else "")


@dataclass(frozen=True)
class ExitEntry:
    """An exit as the ledger keeps it: its result and its summary."""

    KIND: ClassVar[EntryKind] = EntryKind.EXIT
    result: ExitResult

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "summary": self.result.summary}


def client_binaries(environment: Environment, *majors: int) -> PgBinaries:
    """Client programs of the newest major among the source's, the target's and ours."""
    found: list[PgBinaries] = []
    for where in (environment.config.pg_bin_dir, None):
        with contextlib.suppress(SpectralError):
            found.append(find_binaries(where))
    if not found:
        raise UsageError("no PostgreSQL client programs found (pg_dump, pg_restore, psql)")
    best = max(found, key=lambda b: b.major)
    if best.major < max(majors):
        raise RefusedError(f"the newest client programs here are PostgreSQL {best.major}; the "
                           f"exit needs {max(majors)} or newer (pg_bin_dir)")
    return best


class Exit:
    def __init__(self, environment: Environment, request: ExitRequest, operator: Operator,
                 report: Say) -> None:
        self.environment, self.request = environment, request
        self.operator, self.say = operator, report
        self.schemas = tuple(environment.config.schemas)
        self.target = Connection(request.target_dsn)
        self.result = ExitResult(environment.name, ExitOutcome.FAILED, "?",
                                 describe_dsn(request.target_dsn))
        self.copy: Copy | None = None
        self._carried: tuple[str, ...] = ()
        self._facts: TargetFacts | None = None
        self._role_map: dict[str, str] = {}

    # ---- the whole run ------------------------------------------------------------------
    def run(self) -> ExitResult:
        started = time.monotonic()
        try:
            with self._source() as source_dsn:
                self.result.source = (describe_dsn(source_dsn) if self.copy is None
                                      else f"{self.copy.what} ({describe_dsn(source_dsn)})")
                self._run(source_dsn)
        except RefusedError as exc:
            self.result.outcome, self.result.error = ExitOutcome.REFUSED, exc.message
            raise
        except SpectralError as exc:
            self.result.error = exc.message
            raise
        finally:
            self.result.timings["total"] = time.monotonic() - started
            self._record()
        return self.result

    def _run(self, source_dsn: str) -> None:
        # what a killed exit wrote into this target is taken back before it is looked at
        self.result.undone = recover(self._folder(), self.request.target_dsn, self.say)
        with connect(source_dsn) as src, connect(self.request.target_dsn) as tgt:
            src.autocommit = tgt.autocommit = True
            assessed = portability.assess(src, self.schemas, tgt)
            self.result.report = assessed.to_json()
            self._refuse_unplanned(assessed)
            self._carried, self._facts = assessed.carried, assessed.target
            self._role_map = assessed.role_map
            self._refuse_non_empty(tgt)
            settings = {r[0] for r in tgt.execute("select name from pg_settings")}
        assert assessed.target is not None
        bins = client_binaries(self.environment, assessed.source_version_num // 10000,
                               assessed.target.major)
        shims = [i for i in assessed.items if i.plan is Plan.SHIM]
        if not self.operator.confirm(
                f"Move schemas {', '.join(self.schemas)} into {self.result.target}?",
                [f"from {self.result.source}", *[f"first: {i.action}" for i in shims],
                 *[f"left out: {i.kind} {i.name} ({i.consequence})" for i in assessed.items
                   if i.plan is Plan.LEAVE_OUT]]):
            raise RefusedError("the exit was not confirmed; nothing was written")
        work = self._folder() / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        journal = Journal.begin(self._folder(), target_parts(self.request.target_dsn), work)
        work.mkdir(parents=True, exist_ok=True)        # recorded first: never an orphan
        crash_point("exit:begun")
        undo = UndoStack()
        try:
            self._move(source_dsn, assessed, bins, settings, work, undo, journal)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if not undo.errors:         # done, or undone: nothing left to take back
                journal.finish()
                crash_point("exit:finished")   # before the ledger's entry

    def _folder(self) -> Path:
        return self.environment.state_dir / "exit"

    def _move(self, source_dsn: str, assessed: Report, bins: PgBinaries, settings: set[str],
              work: Path, undo: UndoStack, journal: Journal) -> None:
        opts = Options(self.schemas, content=True,
                       lock_timeout=self.environment.config.lock_timeout)
        source = Connection(source_dsn)
        with undo, connect(source_dsn, autocommit=False) as holder:
            holder.execute("set transaction isolation level repeatable read, read only")
            row = holder.execute("select pg_export_snapshot()").fetchone()
            assert row is not None
            snapshot = str(row[0])
            self.say(f"taking the source's fingerprint (snapshot {snapshot})")
            mark = time.monotonic()
            source_doc = take(source_dsn, opts, snapshot=snapshot)
            self.result.timings["fingerprint_source"] = time.monotonic() - mark
            self.say(f"dumping {', '.join(self.schemas)} with pg_dump {bins.version} "
                     f"({self.request.jobs} jobs)")
            mark = time.monotonic()
            dump(bins, source, self.schemas + assessed.carried, work / "dump",
                 self.request.jobs, snapshot=snapshot, lock_wait=opts.lock_timeout)
            self.result.timings["dump"] = time.monotonic() - mark
            crash_point("exit:dumped")
            mark = time.monotonic()
            self._create_shims(assessed, undo, journal)
            restore = self._restore(bins, work / "dump", settings, source_dsn, undo, journal)
            self.result.timings["restore"] = time.monotonic() - mark
            self.say("proving the copy: the target's fingerprint against the source's")
            mark = time.monotonic()
            # read before FORCE ROW LEVEL SECURITY is set again: the target's owner has no
            # BYPASSRLS, and a forced table would be unreadable to it
            # (and tables hashed again through their text form, too)
            read = take(self.request.target_dsn, opts)
            source_doc, read = self._common_hashes(source_dsn, snapshot, source_doc, read)
            invitees = read_reinvites(holder, self.schemas + assessed.carried,
                                      self.environment.config.exit_invites)
            holder.rollback()
            restore.finish()
            crash_point("exit:sealed")
            catalog = take(self.request.target_dsn, Options(self.schemas))
            target_doc = replace(catalog, content=True, tables=read.tables,
                                 sequences=read.sequences).sealed()
            comparison, planned = prove(assessed, source_doc, target_doc)
            self.result.timings["verify"] = time.monotonic() - mark
            self.result.planned, self.result.comparison = planned, comparison.to_json()
            undo.release_all()
            crash_point("exit:proven")
        if comparison.outcome is Outcome.MATCH:     # only a proven exit writes the list
            self.result.outcome = ExitOutcome.PROVEN
            self.result.reinvites = write_reinvites(
                invitees, self.environment.ledger.dir, self.environment.config.exit_invites,
                self.say)
        else:
            self.result.outcome = ExitOutcome.DIFFERS
            found = [d for s in comparison.schemas for d in s.differences[:5]]
            found += [f"{t.name}: {t.outcome.value}" for t in comparison.tables
                      if t.outcome is not Outcome.MATCH]
            raise CheckFailed(f"the copy in {self.result.target} differs from the source in "
                              f"ways the exit did not plan: " + "; ".join(found),
                              hint="the copy stays in the target for a look; empty its "
                                   "schemas before the next exit into it")

    def _common_hashes(self, source_dsn: str, snapshot: str, source_doc: Fingerprint,
                       target_doc: Fingerprint) -> tuple[Fingerprint, Fingerprint]:
        """Tables the two servers could not hash the same way (before PostgreSQL 17, date,
        boolean and bytea have no hash function of their own) are hashed again on both sides
        through their text form; the source still as of the dump's snapshot."""
        differ = {name for name, t in source_doc.tables.items()
                  if (o := target_doc.tables.get(name)) is not None and
                  t.ok and o.ok and t.method != o.method}
        if not differ:
            return source_doc, target_doc
        self.say(f"hashing {len(differ)} table(s) through their text form on both sides "
                 f"(the servers' hash functions differ)")
        text = Method.TEXT_HASH
        redo_source = retake(source_dsn, self.schemas, differ, text, snapshot=snapshot)
        redo_target = retake(self.request.target_dsn, self.schemas, differ, text)
        return (replace(source_doc, tables={**source_doc.tables, **redo_source}).sealed(),
                replace(target_doc, tables={**target_doc.tables, **redo_target}).sealed())

    # ---- the source ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _source(self) -> Iterator[str]:
        if self.request.source_dsn:
            yield self.request.source_dsn
            return
        if self.request.from_copy is None:
            stack = contextlib.ExitStack()
            try:   # only the source's own connection: a target that fails is not the source
                live = stack.enter_context(self.environment.database())
            except ConnectError as exc:
                self.say(f"the live database does not answer ({exc.message}): exiting from "
                         f"a restored copy of the latest backup")
            else:
                with stack:
                    yield live
                return
        provider = self.environment.provider
        target = self.request.from_copy or LatestTarget()
        self.copy = provider.restore_new(target, self.operator, self.say)
        try:
            if not self.copy.dsn:
                raise UsageError(f"{self.copy.what} has no connection string for pg_dump",
                                 hint="pass --source-dsn (its DSN or a secret reference)")
            yield self.copy.dsn
        finally:
            with contextlib.suppress(SpectralError):
                provider.remove_copy(self.copy, self.operator, self.say)

    # ---- refusals before anything is written -------------------------------------------
    def _refuse_unplanned(self, assessed: Report) -> None:
        if assessed.refusals:
            raise RefusedError(
                f"{len(assessed.refusals)} dependenc{'y' if len(assessed.refusals) == 1 else 'ies'}"
                f" without a plan; nothing was written: " + "; ".join(
                    f"{i.kind} {i.name} ({i.action}; used by {', '.join(i.used_by[:2])})"
                    for i in assessed.refusals),
                hint="spectral dr portability --target ... lists every item")

    def _refuse_non_empty(self, tgt: psycopg.Connection[Any]) -> None:
        rows = tgt.execute(
            "select n.nspname, count(c.oid) + (select count(*) from pg_proc p "
            "where p.pronamespace = n.oid) + (select count(*) from pg_type t "
            "where t.typnamespace = n.oid and t.typrelid = 0 and t.typelem = 0) "
            "from pg_namespace n left join pg_class c on c.relnamespace = n.oid "
            "where n.nspname = any(%s) group by n.oid, n.nspname",
            (list(self.schemas + self._carried),)
        ).fetchall()
        busy = [f"{name} ({n} objects)" for name, n in rows if n]
        if busy:
            raise RefusedError(f"the target's schemas are not empty: {', '.join(busy)}; the "
                               f"exit writes only into empty or absent schemas, nothing was "
                               f"written")

    # ---- writing ------------------------------------------------------------------------
    def _create_shims(self, assessed: Report, undo: UndoStack, journal: Journal) -> None:
        dsn = self.request.target_dsn
        with connect(dsn) as tgt:
            tgt.autocommit = True
            for item in assessed.items:
                if item.plan is not Plan.SHIM:
                    continue
                self.say(f"shim: {item.action}")
                for statement, revert in shim_statements(tgt, item):
                    if revert:
                        journal.will(revert)            # recorded before it is written
                        crash_point("exit:shim-recorded")
                    tgt.execute(statement.encode())
                    crash_point("exit:shim-written")
                    if revert:
                        undo.push(revert, functools.partial(execute, dsn, revert))

    def _restore(self, bins: PgBinaries, archive: Path, settings: set[str], source_dsn: str,
                 undo: UndoStack, journal: Journal) -> Restore:
        moved = self.schemas + self._carried
        created = [s for s in moved if not schema_exists(self.request.target_dsn, s)]
        facts = self._facts
        restore = Restore(bins, archive, self.target, settings, self.request.jobs,
                          adopted=tuple(s for s in moved if s not in created),
                          privileges=frozenset(facts.privileges if facts else ()),
                          default_role=facts.user if facts else None,
                          role_map=self._role_map)
        drop = "; ".join(f"drop schema if exists {ident(s)} cascade" for s in created)
        if drop:
            journal.will(drop)
            crash_point("exit:schemas-recorded")
            undo.push("the moved schemas", functools.partial(
                execute, self.request.target_dsn, drop))
        self.say("restoring pre-data (types, tables, functions) as "
                 f"{conninfo_to_dict(self.request.target_dsn).get('user', '?')}")
        restore.section("pre-data")
        crash_point("exit:pre-data")
        self.say(f"restoring data in {self.request.jobs} sessions")
        restore.data()
        crash_point("exit:data")
        fill_identity_shims(source_dsn, self.request.target_dsn, self.schemas,
                            self.schemas + self._carried)
        self.say("restoring post-data (indexes, constraints, policies, triggers)")
        restore.section("post-data")
        crash_point("exit:post-data")
        return restore

    # ---- after --------------------------------------------------------------------------
    def _record(self) -> None:
        with contextlib.suppress(SpectralError):
            self.environment.ledger.record(self.environment.name, ExitEntry(self.result))
