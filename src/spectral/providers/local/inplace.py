"""In-place restore of an environment's own database, and its undo.

The replaced data directory is kept aside (renamed, never deleted by the restore itself), and a
record says which restore it belongs to. The rule, documented in the README:

- only the newest in-place restore can be undone, once: `--undo` puts back the directory that
  restore replaced, never an older one, and says what it discards (the transactions since);
- the directories kept aside by earlier restores, and those an undo took out, are deleted when
  the next in-place restore succeeds (that restore is confirmed with --yes), or by
  `--discard-previous` (asked first).

Both run under an intent journal (intent.py): what will be renamed where is on disk before the
first rename, and a command that finds the journal of a killed run rolls back to the intact
live data (or finishes, once the restore's record was written or the undo removed it)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spectral.durable import fsync_dir, rename_durable, write_atomic
from spectral.errors import ClusterError, CouldNotVerify, RefusedError
from spectral.ledger.payloads import InPlaceRestoreRecord, UndoRecord
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.pg.control import control_fact
from spectral.providers.base import Progress
from spectral.providers.capabilities import RecoveryReached, UndoOutcome
from spectral.providers.local.intent import (
    RECORD_NAME,
    RESTORE,
    SERVER_RAN,
    UNDO,
    Journal,
    crash_point,
    owed_key,
    roll_back_undo,
)
from spectral.providers.local.newtimeline import check_fresh, on_disk
from spectral.providers.local.recovery import (
    recovery_failure,
    recovery_settings,
    throwaway_settings,
)
from spectral.providers.local.restore import RestoreSteps, described, prepare_own_recovery
from spectral.providers.local.settle import pending_prepared, settle
from spectral.providers.local.targets import plan
from spectral.recovery_target import RecoveryTarget
from spectral.room import ensure_copy_fits
from spectral.waits import WaitTimeout, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from spectral.ledger.outbox import Outbox
    from spectral.providers.base import RecoverableWindow
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.repo import Repository


RECORD_VERSION = 1


@dataclass(frozen=True)
class Rewound:
    """An in-place restore done: what the live database holds now, where the data it replaced
    is kept, the older kept-aside copies it removed, where recovery stopped."""

    target: str
    backup: str
    previous: str
    discarded: tuple[str, ...]
    reached: RecoveryReached


class InPlace:
    """The parts it uses: the host (its cluster and settings), the repository and a restorer
    for the plan, the recoverable window (`window`: flushed first), the operation lock and the
    outbox its restores and undos are owed to the ledger in (ledger/outbox.py: the features
    write the ledger)."""

    def __init__(self, host: LocalEnvironment, repo: Repository, restorer: RestoreSteps,
                 window: Callable[[], RecoverableWindow],
                 busy: Callable[[str], AbstractContextManager[None]], outbox: Outbox) -> None:
        self.host, self.repo, self.restorer, self.outbox = host, repo, restorer, outbox
        self.window, self.busy = window, busy
        self.dir = host.paths.cluster_dir
        self.record_file = self.dir / RECORD_NAME
        self.journal = Journal(self.dir)

    # ---- what is kept aside ---------------------------------------------------------------
    def kept_aside(self) -> list[Path]:
        return sorted(self.dir.glob("data.previous-*"))

    def undone(self) -> list[Path]:
        return sorted(self.dir.glob("data.undone-*"))

    def record(self) -> dict[str, Any] | None:
        """The newest in-place restore that can still be undone."""
        try:
            d: dict[str, Any] = json.loads(self.record_file.read_text())
        except (OSError, ValueError):
            return None
        return d if Path(d.get("aside", "")).is_dir() else None

    # ---- restore ---------------------------------------------------------------------------
    def restore(self, target: RecoveryTarget, *, confirmed: bool,
                progress: Progress | None = None) -> Rewound:
        """Replace the environment's database with a restore; the current data directory is
        kept aside so this one restore can be undone."""
        if not confirmed:
            raise RefusedError("an in-place restore replaces the environment's database; it "
                               "needs --yes", hint="without --in-place a restore goes into a "
                                                   "new throwaway instance")
        with self.busy("in-place restore"):
            self.outbox.check()
            done, intent = self._restore(target, progress)
            record = InPlaceRestoreRecord(f"in-place restore to {done.target}", done.target,
                                          done.backup, done.previous, done.discarded)
            self.outbox.owe(record, owed_key(intent))
            self.journal.phase(intent, "recorded")
            crash_point("restore:recorded")
            self.journal.end()
            return done

    def _restore(self, target: RecoveryTarget, progress: Progress | None
                 ) -> tuple[Rewound, dict[str, Any]]:
        host = self.host
        window = self.window()   # the archive flushed first: the target may be in its segment
        restore_plan = plan(host.bins, self.repo, target, window)
        older = self.kept_aside() + self.undone()
        cluster = host.cluster()
        # the live data stays aside beside the restored copy: both must fit (room.py)
        ensure_copy_fits(cluster.data_dir.parent, restore_plan.chain,
                         "the in-place restore (the current data is kept aside beside it)")
        # the restore promotes onto a new timeline; a roll-back promotes the live data again
        check_fresh(self.repo, [(restore_plan.chain[-1].timeline, None), *on_disk(cluster)])
        was_running = cluster.stop(timeout=60)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        aside = cluster.data_dir.with_name(f"data.previous-{stamp}")
        intent = self.journal.begin(RESTORE, data=str(cluster.data_dir), aside=str(aside),
                                    older=[str(o) for o in older], was_running=was_running,
                                    port=cluster.port, target=target.describe())
        crash_point("restore:begun")
        rename_durable(cluster.data_dir, aside)
        self.journal.phase(intent, "moved-aside")
        crash_point("restore:moved-aside")
        try:
            written = self.restorer.materialize(restore_plan, cluster.data_dir, progress)
            # Recovery runs without hot standby (recovery_settings: with it, a checkpoint written
            # while a transaction was prepared can make recovery FATAL) and so without the WAL
            # summarizer, which the end-of-recovery checkpoint would then wait for in vain ("WAL
            # summarization is not progressing"); _settle turns it back on after promotion, and
            # an incremental backup then needs a full backup first, as after an undo
            conf = {**host.own_settings(), **throwaway_settings(host.bins),
                    **recovery_settings(restore_plan.target, self.restorer.restore_command(),
                                        pause=False), **written}
            self.restorer.prepare_recovery(cluster, conf, restore_plan.target)
            crash_point("restore:materialized")
            self.journal.phase(intent, "recovering")   # from here a server runs on it
            crash_point("restore:recovering")
            reached = self.restorer.recover(cluster, restore_plan, window, False, progress)
        except BaseException:
            cluster.stop(timeout=30)
            self._roll_back(intent, cluster, was_running)
            raise
        crash_point("restore:recovered")
        settle(cluster, host)
        reached = replace(reached, prepared=tuple(pending_prepared(cluster)),
                          resolved=restore_plan.why or None)
        what = described(restore_plan)
        self._commit(cluster, what, aside, intent)
        crash_point("restore:committed")
        discarded = []
        for old in older:   # earlier restores can no longer be undone: their copies go
            shutil.rmtree(old, ignore_errors=True)
            discarded.append(str(old))
        crash_point("restore:discarded")
        if not was_running:
            cluster.stop()
        return Rewound(what, restore_plan.chain[-1].id, str(aside), tuple(discarded),
                       reached), intent

    def _roll_back(self, intent: dict[str, Any], cluster: Cluster, was_running: bool) -> None:
        """The intact live data goes back, as after a kill (intent.roll_back_restore): once
        a server ran on the restored data it may have promoted it and archived a new timeline
        (a recovery that ended short of the archive does), and later restores to the latest
        point would follow that one; the put-back database then moves to a timeline above it."""
        from spectral.providers.local.intent import roll_back_restore

        if intent.get("phase") not in SERVER_RAN:
            shutil.rmtree(cluster.data_dir, ignore_errors=True)
            rename_durable(Path(intent["aside"]), cluster.data_dir)
            self.journal.end()
            if was_running:
                cluster.start()
            return
        done = roll_back_restore(self.host, self.journal, intent, self)
        self.host.tell(f"the in-place restore failed: {done.message.split(': ', 1)[-1]}")
        if was_running and not cluster.is_running():
            cluster.start()

    def _commit(self, cluster: Cluster, what: str, aside: Path, intent: dict[str, Any]
                ) -> None:
        """The record of the restore (what an undo puts back) is its commit point."""
        with connect(cluster.conninfo()) as conn:
            row = conn.execute("select txid_snapshot_xmax(txid_current_snapshot())::text, "
                               "pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        write_atomic(self.record_file, json.dumps({
            "version": RECORD_VERSION, "aside": str(aside), "target": what,
            "restored_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "next_xid": int(row[0]), "lsn": row[1]}) + "\n")
        self.journal.phase(intent, "committed")

    # ---- undo -------------------------------------------------------------------------------
    def undo_preview(self) -> list[str]:
        """What an undo will do and what it discards, for the confirmation."""
        rec = self.record()
        if rec is None:
            return []
        since = self._transactions_since(rec)
        return [f"puts back the database as it was before the in-place restore to "
                f"{rec['target']} at {rec['restored_at']} ({rec['aside']})",
                f"discards what the live database holds since that restore: "
                f"{since if since is not None else 'an unknown number of'} transaction(s) "
                f"(kept aside as data.undone-*, not deleted)"]

    def _transactions_since(self, rec: dict[str, Any]) -> int | None:
        try:
            with self.host.session() as cluster, connect(cluster.conninfo()) as conn:
                row = conn.execute("select txid_snapshot_xmax(txid_current_snapshot())"
                                   "::text").fetchone()
        except (ClusterError, CouldNotVerify):
            return None
        return max(0, int(row[0]) - int(rec["next_xid"])) if row else None

    def undo(self) -> UndoOutcome:
        """Undo the newest in-place restore, once; the restored database is kept aside in its
        turn (nothing is deleted)."""
        with self.busy("undo"):
            rec = self.record()
            if rec is None:
                raise RefusedError("there is no in-place restore to undo (only the newest one "
                                   "can be undone, once)", hint="spectral dr restore --in-place "
                                   "--target-... restores to an earlier point instead")
            self.outbox.check()
            done, intent = self._undo(rec)
            undone = UndoRecord(f"undo of the in-place restore to {rec['target']}",
                                done.environment, done.restored, done.set_aside, done.timeline)
            self.outbox.owe(undone, owed_key(intent))
            self.journal.phase(intent, "recorded")
            crash_point("undo:recorded")
            self.journal.end()
            return done

    def _undo(self, rec: dict[str, Any]) -> tuple[UndoOutcome, dict[str, Any]]:
        cluster = self.host.cluster()
        # the put-back data's timeline: a recovery after a kill knows by it whether the
        # undo's own recovery had already promoted it (and must not run a second time)
        before = int(control_fact(self.host.bins, Path(rec["aside"]),
                                  "Latest checkpoint's TimeLineID"))
        check_fresh(self.repo, [(before, Path(rec["aside"]) / "pg_wal")])
        was_running = cluster.stop(timeout=60)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        undone = cluster.data_dir.with_name(f"data.undone-{stamp}")
        intent = self.journal.begin(UNDO, data=str(cluster.data_dir), aside=rec["aside"],
                                    undone=str(undone), record=rec, was_running=was_running,
                                    port=cluster.port, target=rec["target"],
                                    timeline_before=before)
        crash_point("undo:begun")
        rename_durable(cluster.data_dir, undone)
        self.journal.phase(intent, "set-aside")
        crash_point("undo:set-aside")
        rename_durable(Path(rec["aside"]), cluster.data_dir)
        self.journal.phase(intent, "put-back")
        crash_point("undo:put-back")
        try:
            timeline = self.branch_new_timeline(cluster, intent)
        except BaseException:   # the restored database goes back; the undo can be run again
            roll_back_undo(self.host, intent)
            self.journal.end()
            if was_running and not cluster.is_running():
                cluster.start()   # and runs again, as before the undo (it was left stopped)
            raise
        crash_point("undo:recovered")
        self.record_file.unlink(missing_ok=True)   # the commit point
        fsync_dir(self.dir)
        self.journal.phase(intent, "committed")
        crash_point("undo:committed")
        if not was_running:
            cluster.stop(timeout=60)
        return UndoOutcome(self.host.name, str(rec["aside"]), str(undone), timeline), intent

    def discard(self) -> list[str]:
        """Delete every kept-aside data directory (after which nothing can be undone)."""
        with self.busy("discard"):
            # the record goes first: a discard killed midway never leaves an undo that would
            # put back a half-deleted directory
            self.record_file.unlink(missing_ok=True)
            fsync_dir(self.dir)
            crash_point("discard:record-removed")
            gone = []
            for path in self.kept_aside() + self.undone():
                shutil.rmtree(path)
                gone.append(str(path))
                crash_point("discard:one-removed")
            return gone

    def finish_branch(self, cluster: Cluster, timeline_before: int | None) -> int:
        """After a kill: the put-back database is on a new timeline already when its control
        file says so and no recovery is pending; it is started as it is (a second archive
        recovery would read its own checkpoint through restore_command, and an archive holding
        a segment of that name from another history, a timeline id reused after lost history
        files, made it fail). Otherwise the undo's recovery runs again."""
        promoted = timeline_before is not None and \
            not (cluster.data_dir / "recovery.signal").exists() and \
            cluster.checkpoint_timeline() > timeline_before
        if not promoted:
            return self.branch_new_timeline(cluster)
        cluster.start()
        settle(cluster, self.host)
        with connect(cluster.conninfo()) as conn:
            row = conn.execute("select timeline_id from pg_control_checkpoint()").fetchone()
        return int(row[0]) if row else 0

    def branch_new_timeline(self, cluster: Cluster, intent: dict[str, Any] | None = None
                            ) -> int:
        """The put-back directory is on the timeline the restore branched from, while the
        archive already holds the restore's newer timeline: left so, a later restore to the
        latest point would follow the abandoned restore and miss every write made after the
        undo. An archive recovery with no target ends at once and promotes, which moves the
        database to a new timeline (PostgreSQL picks one above every timeline in the archive);
        later restores follow it."""
        host = self.host
        check_fresh(self.repo, on_disk(cluster))
        # history files only: the put-back database needs no WAL but its own pg_wal (it was
        # stopped, or crashed, with everything since its checkpoint there), and the archive may
        # hold segments of its timeline's id from another history (an id reused after lost
        # history files: replayed, they put that history's rows in the live database)
        fetch = self.restorer.restore_command()
        conf = {**host.own_settings(),
                **throwaway_settings(host.bins),
                "restore_command": f"case %f in *.history) {fetch} ;; *) false ;; esac",
                "recovery_target_timeline": "current"}
        prepare_own_recovery(cluster, conf)    # nothing of the archive goes into its pg_wal
        if intent is not None:
            self.journal.phase(intent, "recovering")
            crash_point("undo:recovering")
        try:
            cluster.start(timeout=24 * 3600)

            def promoted() -> bool:
                with connect(cluster.conninfo()) as conn:
                    row = conn.execute("select pg_is_in_recovery()").fetchone()
                return row is not None and not row[0]

            wait_until(promoted, timeout=24 * 3600, interval=0.05, max_interval=0.5,
                       what="the put-back database to leave recovery")
        except (ClusterError, WaitTimeout):
            log = cluster.log_file.read_text(errors="replace") if cluster.log_file.exists() \
                else ""
            raise CouldNotVerify(f"the put-back database did not come up on a new timeline: "
                                 f"{recovery_failure(log) or 'see the log'}") from None
        settle(cluster, host)
        with connect(cluster.conninfo()) as conn:
            conn.execute("checkpoint")   # the new timeline's first checkpoint: its id on record
            row = conn.execute("select timeline_id from pg_control_checkpoint()").fetchone()
        return int(row[0]) if row else 0
