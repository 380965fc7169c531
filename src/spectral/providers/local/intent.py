"""The intent journal: what a multi-step file operation (an in-place restore, its undo) is
about to do, on disk before its first rename.

One operation at a time per environment (they run under the operation lock), so the journal is
one small file, `<cluster_dir>/intent.json`: the operation, its owner (pid and process start
time, so a reused pid does not count as alive), the paths it moves and which of them holds the
intact live data, and the phase it reached. Every write is atomic and fsynced (file and
folder), and every step of the operation is idempotent, so the command that finds a journal
whose owner is gone can put things right: finish what was committed, roll back what was not,
and never delete the only intact copy of the live data.

`crash_point` is for tests only: `SPECTRAL_TEST_CRASH_AT=<step>` makes the process kill itself
with SIGKILL at that named step, which is how the tests prove every step boundary recoverable."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spectral.durable import file_lock, fsync_dir, rename_durable, write_atomic
from spectral.errors import ClusterError
from spectral.pg.cluster import Cluster
from spectral.providers.local.instances import owner_alive, process_start
from spectral.undo import CRASH_ENV, crash_point

__all__ = ["CRASH_ENV", "crash_point"]   # still imported from here by the tests

if TYPE_CHECKING:
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.inplace import InPlace

INTENT_VERSION = 1


@dataclass(frozen=True)
class Journal:
    """The intent file of one environment's cluster folder."""

    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / "intent.json"

    def read(self) -> dict[str, Any] | None:
        try:
            d = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # a torn write is impossible (atomic rename); anything else is not ours to guess
            return {"op": "unreadable", "owner_pid": None}
        return d if isinstance(d, dict) else {"op": "unreadable", "owner_pid": None}

    def begin(self, op: str, **facts: Any) -> dict[str, Any]:
        """Record the intent (fsynced) before the operation's first step; returns it."""
        d = {"version": INTENT_VERSION, "op": op, "phase": "begun", "owner_pid": os.getpid(),
             "owner_start": process_start(os.getpid()), "id": secrets.token_hex(8),
             "begun_at": datetime.now(UTC).isoformat(timespec="seconds"), **facts}
        self._write(d)
        return d

    def phase(self, d: dict[str, Any], phase: str) -> None:
        """The operation reached `phase` (fsynced before the next step)."""
        d["phase"] = phase
        self._write(d)

    def end(self) -> None:
        """The operation is complete (or rolled back): nothing left to recover."""
        self.path.unlink(missing_ok=True)
        fsync_dir(self.folder)

    def _write(self, d: dict[str, Any]) -> None:
        write_atomic(self.path, json.dumps(d, indent=1) + "\n")

    @contextlib.contextmanager
    def recovering(self) -> Iterator[dict[str, Any] | None]:
        """The journal of an operation whose owner is gone, under a lock that keeps two
        recovering commands apart; None when there is nothing to recover (or the owner runs)."""
        if not self.path.exists():
            yield None
            return
        with file_lock(self.folder / "intent.lock"):
            d = self.read()
            yield d if d is not None and not self.owner_runs(d) else None

    @staticmethod
    def owner_runs(d: dict[str, Any]) -> bool:
        pid = d.get("owner_pid")
        return pid == os.getpid() or owner_alive(pid, d.get("owner_start"))


    def running_owner(self) -> int | None:
        """The pid of another live process in the middle of an operation, if any."""
        d = self.read() if self.path.exists() else None
        if d is None or d.get("owner_pid") == os.getpid() or not self.owner_runs(d):
            return None
        pid = d.get("owner_pid")
        return pid if isinstance(pid, int) else None


# ---- recovery of an in-place restore or undo whose process was killed ---------------------
RESTORE, UNDO = "in-place restore", "undo"
RECORD_NAME = "in-place-restore.json"
SERVER_RAN = ("recovering", "failed")   # phases after a server was started on the new data


@dataclass(frozen=True)
class Recovered:
    message: str       # one line: what was found and what was done
    restart: bool      # the live server ran before the operation: start it again


def recover_in_place(local: LocalEnvironment, inplace: InPlace | None) -> Recovered | None:
    """Put right an in-place restore or undo whose process is gone: roll back to the intact
    live data when it had not committed (its record), finish when it had, or when a server
    already ran on the put-back data of an undo. Without `inplace` (a bare server start, no
    provider) only what needs no recovery run and no ledger is done; a committed operation is
    left to the next command (its data directory is already the live one), and one that needs
    a recovery run is refused with the command that puts it right."""
    journal = Journal(local.paths.cluster_dir)
    with journal.recovering() as d:
        if d is None:
            return None
        if d.get("op") not in (RESTORE, UNDO) or d.get("version") != INTENT_VERSION:
            raise ClusterError(f"{journal.path} records an operation this version does not "
                               f"know ({d.get('op')}, format {d.get('version')}); not "
                               f"touching the data directories",
                               hint="look at the file and the data.* folders beside it")
        paths = _checked_paths(local, d)
        committed = _committed(local, d, paths["aside"])
        if inplace is None and committed:
            return None
        if inplace is None and d.get("phase") in SERVER_RAN:
            raise ClusterError(f"{_who(d)}; its data directory needs a recovery run to be put "
                               f"right", hint="spectral local up (or any spectral dr command "
                                              "of this environment) does it")
        cluster = _cluster(local, paths["data"], d)
        cluster.stop(timeout=60)   # a server the killed run started, checked by pid in /proc
        if committed:
            assert inplace is not None
            return _finish(local, journal, d, inplace)
        if d["op"] == RESTORE:
            return _roll_back_restore(local, journal, d, paths, inplace)
        if d.get("phase") in SERVER_RAN:
            assert inplace is not None
            return _finish_undo(local, journal, d, inplace)
        roll_back_undo(local, d)
        journal.end()
        return Recovered(f"{_who(d)}: rolled back, the database is the restored one again "
                         f"and the undo can be run again (spectral dr restore --undo)",
                         restart=bool(d.get("was_running")))


def _checked_paths(local: LocalEnvironment, d: dict[str, Any]) -> dict[str, Path]:
    """The intent's paths, each checked to be the live data directory or a kept-aside one of
    this environment (a journal never sends a rename or a delete elsewhere)."""
    folder = local.paths.cluster_dir
    out: dict[str, Path] = {}
    for key in ("data", "aside", "undone"):
        if key not in d:
            continue
        path = Path(str(d[key]))
        ok = path == local.paths.data_dir if key == "data" else (
            path.parent == folder and path.name.startswith(("data.previous-", "data.undone-")))
        if not ok or path.is_symlink():
            raise ClusterError(f"{Journal(folder).path} names {path} as {key}, which is not "
                               f"where this environment keeps its data; not touching it")
        out[key] = path
    return out


def _committed(local: LocalEnvironment, d: dict[str, Any], aside: Path) -> bool:
    """A restore commits when its record (naming its kept-aside copy) is written; an undo when
    it removes that record."""
    try:
        rec = json.loads((local.paths.cluster_dir / RECORD_NAME).read_text())
    except (OSError, ValueError):
        rec = {}
    names_aside = isinstance(rec, dict) and rec.get("aside") == str(aside)
    return names_aside if d["op"] == RESTORE else not names_aside


def _cluster(local: LocalEnvironment, data: Path, d: dict[str, Any]) -> Cluster:
    return Cluster(local.bins, data, local.paths.socket_dir, int(d["port"]),
                   local.paths.log_file, database=local.database, env=local.server_env())


def _who(d: dict[str, Any]) -> str:
    return (f"the {d['op']} to {d.get('target', '?')} that pid {d.get('owner_pid')} began at "
            f"{d.get('begun_at', '?')} was interrupted (phase {d.get('phase')})")


def _finish(local: LocalEnvironment, journal: Journal, d: dict[str, Any],
            inplace: InPlace) -> Recovered:
    """Committed: what was left are the steps after the commit (older copies, the live
    settings, the ledger entry); the server runs again if it ran before."""
    discarded = []
    for old in d.get("older", []):   # never the live data or the copy this restore kept
        path = Path(old)
        if path not in (local.paths.data_dir, Path(d["aside"])) and path.is_dir() \
                and path.parent == local.paths.cluster_dir:
            shutil.rmtree(path)
            discarded.append(old)
    local.cluster().write_conf(local.own_settings())
    _record(inplace, d, "finished after its process was killed", discarded=discarded)
    journal.end()
    return Recovered(f"{_who(d)} after it had committed: finished it",
                     restart=bool(d.get("was_running")))


def _record(inplace: InPlace, d: dict[str, Any], how: str, *,
            discarded: list[str] | None = None, timeline: int | None = None) -> None:
    from spectral.ledger.payloads import RecoveredRecord

    if d.get("phase") == "recorded":
        return
    what = (f"in-place restore to {d.get('target')}" if d["op"] == RESTORE else
            f"undo of the in-place restore to {d.get('target')}")
    record = RecoveredRecord(f"{what} ({how})", d["op"] == UNDO, d.get("target"),
                             d.get("aside"), None if discarded is None else tuple(discarded),
                             timeline)
    inplace.outbox.owe(record, owed_key(d))


def owed_key(d: dict[str, Any]) -> str:
    """The ledger entry an operation owes is owed under its intent's identity: the entry the
    killed run owed and the one its recovery owes are one entry."""
    # its own id: two operations begun in the same second by one process (a script, the
    # library) owed under one key would keep only the second's entry (an intent written before
    # the id existed has its start time)
    return f"{d.get('op')}-{d.get('owner_pid')}-{d.get('id') or d.get('begun_at')}"


def roll_back_restore(local: LocalEnvironment, journal: Journal, d: dict[str, Any],
                      inplace: InPlace) -> Recovered:
    """An in-place restore that failed in its own process, rolled back as after a kill."""
    return _roll_back_restore(local, journal, d, _checked_paths(local, d), inplace)


def _roll_back_restore(local: LocalEnvironment, journal: Journal, d: dict[str, Any],
                       paths: dict[str, Path], inplace: InPlace | None) -> Recovered:
    """Not committed: the kept-aside copy is the intact live data; it goes back. The
    half-restored directory is deleted, unless a server ran on it (someone may have written to
    it): then it is kept aside as data.undone-*, and the put-back database moves to a new
    timeline, above the one that server may have begun (as an undo does)."""
    data, aside = paths["data"], paths["aside"]
    server_ran = d.get("phase") in SERVER_RAN
    kept = None
    if aside.is_dir():
        if data.exists() and server_ran:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            kept = data.with_name(f"data.undone-{stamp}")
            rename_durable(data, kept)
        elif data.exists():
            shutil.rmtree(data)
        rename_durable(aside, data)
    elif not (data / "PG_VERSION").exists():
        raise ClusterError(f"{_who(d)}, and neither {aside} nor {data} holds the database; "
                           f"not touching anything")
    note = ""
    if server_ran:
        assert inplace is not None
        cluster = local.cluster()
        note = f"; now on timeline {inplace.branch_new_timeline(cluster)}"
        if not d.get("was_running"):
            cluster.stop(timeout=60)
    journal.end()
    return Recovered(f"{_who(d)}: rolled back, the database is as it was before it" + note
                     + (f"; the half-restored directory is kept at {kept}" if kept else ""),
                     restart=bool(d.get("was_running")))


def _finish_undo(local: LocalEnvironment, journal: Journal, d: dict[str, Any],
                 inplace: InPlace) -> Recovered:
    """A server already ran on the put-back data (it may have begun a new timeline): the undo
    is finished rather than rolled back, its recovery run again. Nothing is deleted: the
    restored database stays kept aside (data.undone-*)."""
    cluster = local.cluster()
    before = d.get("timeline_before")
    timeline = inplace.finish_branch(cluster, before if isinstance(before, int) else None)
    (local.paths.cluster_dir / RECORD_NAME).unlink(missing_ok=True)
    fsync_dir(local.paths.cluster_dir)
    if not d.get("was_running"):
        cluster.stop(timeout=60)
    _record(inplace, d, "finished after its process was killed", timeline=timeline)
    journal.end()
    return Recovered(f"{_who(d)}: finished it, the database is the one from before the "
                     f"restore, on timeline {timeline}", restart=bool(d.get("was_running")))


def roll_back_undo(local: LocalEnvironment, d: dict[str, Any]) -> None:
    """Before its server ran, an undo is undone by renames alone: the restored database (set
    aside as `undone`) goes back, the put-back directory returns to its kept-aside name and
    the restore's record is written again. Nothing is deleted."""
    paths = _checked_paths(local, d)
    data, aside, undone = paths["data"], paths["aside"], paths["undone"]
    _cluster(local, data, d).stop(timeout=60)
    if undone.is_dir():
        if data.exists():
            if aside.exists():
                raise ClusterError(f"{_who(d)}, and {data}, {aside} and {undone} all exist; "
                                   f"not guessing which is which")
            rename_durable(data, aside)
        rename_durable(undone, data)
    write_atomic(local.paths.cluster_dir / RECORD_NAME, json.dumps(d["record"]) + "\n")
