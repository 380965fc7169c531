"""Faults the lifecycle draws beyond its first model (issue 27): damage at any offset inside
WAL records and truncated segments, a missing timeline history file, two-phase commits across
targets, a crash of the source (kill -9 of its postmaster) before a restore, a server restart
under the running stream, and DDL on the source while a drill reads it. PostgreSQL's own
recovery (tests/oracle.py) judges every restore that follows."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conftest import SPECTRAL
from lifecycle_model import PICK, Commit, Model, T, _pick, count
from spectral.pg.cluster import proc_alive

if TYPE_CHECKING:
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.provider import LocalProvider

PREPARED = 8     # max_prepared_transactions of the lifecycle's source


class Faults:
    """Mixed into the state machine: these rules share its root, provider and model."""

    root: Path
    p: LocalProvider
    local: LocalEnvironment
    model: Model
    stream: subprocess.Popen[bytes] | None

    def sql(self, query: str) -> list[tuple]:  # type: ignore[type-arg]
        raise NotImplementedError   # the state machine's

    def record(self, conn: psycopg.Connection, xid: int, rows: dict[int, int],  # type: ignore[type-arg]
               deleted: int, kind: str) -> None:
        lsn, when = conn.execute(
            f"select pg_current_wal_lsn()::text, pg_xact_commit_timestamp('{xid}'::xid)"
        ).fetchone()  # type: ignore[misc]
        self.model.history.append(Commit(xid, lsn, when, dict(rows), deleted, kind=kind))

    # ---- WAL damage -------------------------------------------------------------------------
    @rule(pick=PICK, offset=st.integers(0, 16 * 1024 * 1024 - 64),
          how=st.sampled_from(["bytes", "truncate"]))
    def damage_wal_record(self, pick: int, offset: int, how: str) -> None:
        """Bytes overwritten anywhere in an archived segment (inside a record, a page header,
        or the zeros after the last record), or the segment cut short."""
        segs = sorted(p for p in self.p.repo.archive.glob("0*") if len(p.name) == 24)
        if not segs:
            return
        victim = _pick(segs, pick)
        with open(victim, "r+b") as f:
            if how == "truncate":
                f.truncate(offset)
            else:
                f.seek(offset)
                f.write(bytes(b ^ 0xA5 for b in f.read(16)) or b"\xff" * 16)
                f.seek(offset)
        self.model.faults += 1
        count(f"WAL damaged ({how})")

    @rule()
    def lose_history_file(self) -> None:
        files = sorted(self.p.repo.archive.glob("*.history"))
        if not files:
            return
        files[-1].unlink()
        self.model.faults += 1
        count("history file deleted")

    # ---- two-phase commits ------------------------------------------------------------------
    @rule(commit=st.booleans(), delete=st.booleans())
    def two_phase(self, commit: bool, delete: bool) -> None:
        """PREPARE, an ordinary commit, then COMMIT PREPARED (or ROLLBACK PREPARED): a target
        between the two sees the ordinary commit and not the prepared transaction."""
        rows = self.model.rows
        gid = f"lc{len(self.model.history)}x{time.monotonic_ns() % 10**9}"
        victims = sorted(rows)[:3] if delete and rows else []
        mine = list(range(self.model.next_id, self.model.next_id + 3))
        other = self.model.next_id + 3
        self.model.next_id += 4
        conninfo = self.local.cluster().conninfo()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("begin")
            if victims:
                conn.execute(f"delete from {T} where id = any(%s)", (victims,))
            else:
                conn.execute(f"insert into {T} select g, 0, null from generate_series"
                             f"({mine[0]}, {mine[-1]}) g")
            xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
            conn.execute(f"prepare transaction '{gid}'")
            conn.execute(f"insert into {T} values ({other}, 0, null)")
            plain = int(conn.execute("select xid::text from pg_last_committed_xact()"
                                     ).fetchone()[0])  # type: ignore[index]
            rows[other] = 0
            self.record(conn, plain, rows, 0, "insert")
            time.sleep(0.002)
            conn.execute(f"{'commit' if commit else 'rollback'} prepared '{gid}'")
            if commit:
                for i in victims:
                    del rows[i]
                if not victims:
                    rows.update({i: 0 for i in mine})
                self.record(conn, xid, rows, len(victims), "delete" if victims else "insert")
        count(f"two-phase {'commit' if commit else 'rollback'}{' delete' if victims else ''}")

    def settle_prepared(self) -> None:
        """A rewind to between PREPARE and COMMIT PREPARED brings the prepared transaction back,
        pending and holding its locks, as PostgreSQL's recovery does; the operator decides its
        fate. The model's rows at the target exclude it, so it is rolled back."""
        for (gid,) in self.sql("select gid from pg_prepared_xacts"):
            self.sql(f"rollback prepared '{gid}'")
            count("prepared transaction rolled back after a rewind")

    # ---- the source crashes -------------------------------------------------------------------
    @rule()
    @precondition(lambda self: self.model.first_reachable is not None)
    def crash_source(self) -> None:
        """kill -9 of the source's postmaster right after a commit still only in its pg_wal;
        then a restore of the latest point must hold that commit or be refused."""
        rows = self.model.rows
        new = self.model.next_id
        self.model.next_id += 1
        with psycopg.connect(self.local.cluster().conninfo(), autocommit=True) as conn:
            conn.execute(f"insert into {T} values ({new}, 0, null)")
            xid = int(conn.execute("select xid::text from pg_last_committed_xact()"
                                   ).fetchone()[0])  # type: ignore[index]
            rows[new] = 0
            self.record(conn, xid, rows, 0, "insert")
            lsn, walfile = conn.execute(
                "select pg_current_wal_flush_lsn()::text, "
                "pg_walfile_name(pg_current_wal_flush_lsn())").fetchone()  # type: ignore[misc]
        pid = int((self.local.paths.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30   # gone, or a zombie (/proc lists it until reaped)
        while proc_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not proc_alive(pid), f"the source's postmaster {pid} outlived kill -9"
        self.crashed_at = (lsn, int(walfile[:8], 16))
        self.restore_after_crash()   # the state machine's: a restore judged by the model
        self.crashed_at = None
        # crash recovery: every commit is back. As `spectral local up`, it keeps the server
        # running: the restore's flush may have started it for itself, and the last command
        # using it (a running stream) would otherwise stop it on its way out
        self.local.up()
        count("source crashed (kill -9)")

    crashed_at: tuple[str, int] | None = None   # the flushed LSN and timeline at the crash

    def restore_after_crash(self) -> None:
        raise NotImplementedError   # the state machine's

    # ---- the stream under a restart -----------------------------------------------------------
    @rule()
    @precondition(lambda self: self.stream is not None and self.stream.poll() is None)
    def restart_under_stream(self) -> None:
        self.local.down()
        self.local.up()
        count("server restarted under the stream")

    # ---- DDL on the source while a drill reads it ---------------------------------------------
    @rule(delay=st.floats(0.1, 2.0))
    @precondition(lambda self: self.model.first_reachable is not None)
    def ddl_during_drill(self, delay: float) -> None:
        """A migration while a drill snapshots the source: the ALTER must not wait behind the
        drill for long, and the drill passes or says it could not verify."""
        drill = subprocess.Popen([SPECTRAL, "dr", "drill", "functional", "--content"],
                                 cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        time.sleep(delay)
        started = time.monotonic()
        with psycopg.connect(self.local.cluster().conninfo(), autocommit=True) as conn:
            conn.execute("set lock_timeout = '30s'")
            conn.execute(f"alter table {T} add column if not exists note_ddl text")
            conn.execute(f"alter table {T} drop column note_ddl")
        waited = time.monotonic() - started
        out, err = drill.communicate(timeout=900)
        assert waited < 20, f"a migration waited {waited:.1f} s behind a drill"
        assert drill.returncode in (0, 3) or self.drill_passed(drill.returncode, out), \
            (drill.returncode, out[-400:], err[-400:])
        count("DDL during a drill")
