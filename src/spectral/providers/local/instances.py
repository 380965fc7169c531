"""The registry of throwaway instances that restores make: `<state_dir>/instances/<id>/` with
`instance.json` (what was restored, its state, and the process that owns it). Ids are checked
against the registry's own format and resolved inside its folder before anything is read,
signalled or deleted; a server is stopped only by its own recorded pid, checked in /proc."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.durable import write_atomic
from spectral.errors import UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, socket_dir_for
from spectral.providers.base import Instance

INSTANCE_ID_RE = re.compile(r"r\d{8}T\d{9}")


class Registry:
    def __init__(self, bins: PgBinaries, root: Path) -> None:
        self.bins = bins
        self.root = root

    def register_start(self, home: Path, target: str = "?") -> None:
        """Claim a new instance folder for this process before anything is copied into it:
        from here on `instances()` lists it, and `teardown` removes it."""
        write_atomic(home / "instance.json", json.dumps(
            {"id": home.name, "state": "restoring", "owner_pid": os.getpid(),
             "owner_start": process_start(os.getpid()), "target": target,
             "created_at": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n")

    @staticmethod
    def write(home: Path, inst: Instance, state: str, keep: bool = True) -> None:
        meta = {**inst.to_json(), "state": state, "keep": keep, "owner_pid": os.getpid(),
                "owner_start": process_start(os.getpid())}
        if keep and state != "restoring":   # outlives its process on purpose (dr restore)
            meta.update(owner_pid=None, owner_start=None)
        write_atomic(home / "instance.json", json.dumps(meta, indent=1) + "\n")

    def keep(self, instance_id: str) -> None:
        """An instance a drill leaves up on purpose (--keep) is no longer an orphan-to-be."""
        meta = self.instance_home(instance_id) / "instance.json"
        d = json.loads(meta.read_text())
        d.update(keep=True, owner_pid=None, owner_start=None)
        write_atomic(meta, json.dumps(d, indent=1) + "\n")

    def instances(self) -> list[Instance]:
        """Every instance folder, those still restoring and those a killed run left included
        (state `orphaned`): whatever takes disk space here is listed."""
        root = self.root
        orphaned = set(self.orphans(min_age=0))
        out = []
        for home in sorted(root.iterdir()) if root.is_dir() else []:
            if not INSTANCE_ID_RE.fullmatch(home.name) or home.is_symlink() or not home.is_dir():
                continue
            d = _meta(home)
            inst = _instance(d) if "dsn" in d else Instance(
                home.name, "", 0, str(home / "data"), str(d.get("backup_id", "?")),
                str(d.get("target", "?")), str(d.get("created_at", "?")),
                state=str(d.get("state", "restoring")))
            if home.name in orphaned:
                inst = replace(inst, state="orphaned")
            out.append(inst)
        return out

    def cluster_of(self, inst: Instance) -> Cluster:
        home = Path(inst.data_dir).parent
        return Cluster(self.bins, Path(inst.data_dir), socket_dir_for(home / "run"), inst.port,
                       home / "log" / "postgres.log")

    def is_running(self, inst: Instance) -> bool:
        return self.cluster_of(inst).is_running()

    def instance_home(self, instance_id: str) -> Path:
        """The folder of a restored instance. The id must have the registry's own format and the
        resolved path must lie inside the instances folder: a user-given id never reaches
        anything else (`..`, `/tmp/x`, a symlink out)."""
        root = self.root
        if not INSTANCE_ID_RE.fullmatch(instance_id):
            raise UsageError(f"{instance_id!r} is not an instance id (ids look like "
                             f"r20261126T213000123; see spectral dr instances)")
        home = root / instance_id
        if home.is_symlink() or not home.resolve().is_relative_to(root.resolve()):
            raise UsageError(f"instance {instance_id} does not resolve inside {root}; "
                             f"not touching it")
        return home

    def teardown(self, instance_id: str) -> bool:
        home = self.instance_home(instance_id)
        if not home.is_dir():
            return False
        # The server is stopped by its own pid (postmaster.pid, or the pid recorded when it was
        # spawned, each checked in /proc); helpers that were copying or combining die with the
        # process that ran them (parent-death signal), so nothing else is signalled.
        Cluster(self.bins, home / "data", socket_dir_for(home / "run"), 0,
                home / "log" / "postgres.log").stop(timeout=30, discard=True)
        shutil.rmtree(home, ignore_errors=True)
        return True

    def orphans(self, min_age: float = 60) -> list[str]:
        """Instances left by a run that died: owned by a process (a drill, a salvage) that is
        gone, or never finished restoring while no process owns them any more. An instance
        whose owning process is alive is never an orphan, whatever its state."""
        root = self.root
        out = []
        for home in sorted(root.iterdir()) if root.is_dir() else []:
            if not INSTANCE_ID_RE.fullmatch(home.name) or home.is_symlink():
                continue
            d = _meta(home)
            if owner_alive(d.get("owner_pid"), d.get("owner_start")):
                continue
            if not d:   # killed before it was registered: its creator is gone or it is new
                if _age(home) > min_age:
                    out.append(home.name)
                continue
            running = Cluster(self.bins, home / "data", socket_dir_for(home / "run"), 0,
                              home / "log" / "postgres.log").is_running()
            if d.get("state") == "restoring" or not running or not d.get("keep", True):
                out.append(home.name)
        return out


def owner_alive(pid: object, start: object) -> bool:
    """Whether the process that owns an instance still runs: its pid exists, and its start
    time (from /proc, recorded with the pid) is the same, so a reused pid does not count."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    now = process_start(pid)
    return now is not None and (start is None or now == start)


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def _meta(home: Path) -> dict[str, Any]:
    try:
        d = json.loads((home / "instance.json").read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _instance(d: dict[str, Any]) -> Instance:
    return Instance.from_json(d)
