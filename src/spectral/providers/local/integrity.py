"""Physical checks of a throwaway instance restored on this host (the copies the local,
pgBackRest and attached providers make): its recovery log read back, pg_amcheck while it runs,
pg_checksums once it is stopped cleanly. Run with the instance's own binaries; the amcheck
extension is installed in the copy where missing, never in the source."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from spectral.errors import CommandError, SpectralError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.pg.integrity import (
    FILE_MAP_SQL,
    amcheck_argv,
    amcheck_findings,
    checksum_findings,
    checksums_argv,
    relation_of,
)
from spectral.pg.osuser import server_identity
from spectral.pg.serverlog import classify, recovery_part
from spectral.providers.integrity import IntegrityReport, IntegrityState
from spectral.runner import run

# a whole copy is read: as long as the biggest copy takes (a terabyte at ~200 MB/s is ~1.5 h)
CHECK_TIMEOUT = 12 * 3600.0
RELATION_PATH = re.compile(r'relation "?((?:base|global|pg_tblspc)/[\w/.]+)"?')


@dataclass
class ThrowawayIntegrity:
    bins: PgBinaries
    cluster: Cluster
    dsn: str
    _files: dict[str, str] = field(default_factory=dict)

    def recovery_log(self) -> IntegrityReport:
        try:
            text = self.cluster.log_file.read_text(errors="replace")
        except OSError as exc:
            return IntegrityReport(IntegrityState.COULD_NOT_CHECK,
                                   f"cannot read {self.cluster.log_file}: {exc.strerror}")
        log = classify(recovery_part(text))
        if log.lines == 0:
            return IntegrityReport(IntegrityState.COULD_NOT_CHECK,
                                   f"{self.cluster.log_file} holds no line of the server's")
        if log.damaged:
            return IntegrityReport(IntegrityState.DAMAGED,
                                   f"recovery logged {len(log.damage)} warning(s) or error(s)",
                                   tuple(self._named(d) for d in log.damage), log.notes)
        return IntegrityReport(IntegrityState.SOUND, f"{log.lines} line(s), no warning or "
                               f"error", notes=log.notes)

    def amcheck(self, *, thorough: bool) -> IntegrityReport:
        how = "thorough: --heapallindexed --parent-check" if thorough else "basic"
        try:
            self._map_files()
            res = run(amcheck_argv(self.bins, conninfo_to_dict(self.dsn), thorough=thorough),
                      timeout=CHECK_TIMEOUT, check=False)
        except (SpectralError, psycopg.Error) as exc:
            return IntegrityReport(IntegrityState.COULD_NOT_CHECK, f"pg_amcheck ({how}): "
                                   f"{_said(exc)}")
        found = amcheck_findings(res.stdout, self._files)
        if res.returncode == 0 and not found:
            return IntegrityReport(IntegrityState.SOUND, f"pg_amcheck ({how}): every B-tree "
                                   f"index and heap table of every database")
        if found:
            return IntegrityReport(IntegrityState.DAMAGED, f"pg_amcheck ({how}): "
                                   f"{len(found)} damaged place(s)", tuple(found))
        return IntegrityReport(IntegrityState.COULD_NOT_CHECK, f"pg_amcheck ({how}) exited "
                               f"{res.returncode}: {_last_line(res.stderr or res.stdout)}")

    def checksums(self) -> IntegrityReport:
        try:
            with connect(self.dsn) as conn:
                row = conn.execute("show data_checksums").fetchone()
            self._map_files()
        except (SpectralError, psycopg.Error) as exc:
            return IntegrityReport(IntegrityState.COULD_NOT_CHECK, _said(exc))
        if not row or row[0] != "on":
            return IntegrityReport(IntegrityState.NOT_CHECKED, "data checksums are off in the "
                                   "source (initdb --data-checksums, or pg_checksums --enable)")
        self.cluster.stop(timeout=120)   # a clean (fast) shutdown: pg_checksums needs one
        try:
            res = run(checksums_argv(self.bins, self.cluster.data_dir), timeout=CHECK_TIMEOUT,
                      check=False, run_as=server_identity())
        except CommandError as exc:
            return IntegrityReport(IntegrityState.COULD_NOT_CHECK, exc.message)
        found = checksum_findings(res.stderr, self.cluster.data_dir, self._files)
        if found:
            return IntegrityReport(IntegrityState.DAMAGED, f"pg_checksums: {len(found)} "
                                   f"block(s) fail their checksum", tuple(found))
        if res.returncode != 0:
            return IntegrityReport(IntegrityState.COULD_NOT_CHECK, f"pg_checksums exited "
                                   f"{res.returncode}: {_last_line(res.stderr)}")
        return IntegrityReport(IntegrityState.SOUND, "pg_checksums: every block of the "
                               "stopped copy matches its checksum")

    def _named(self, line: str) -> str:
        """A log line with the relation its file path belongs to, when the copy can say."""
        m = RELATION_PATH.search(line)
        if m is None:
            return line
        with contextlib.suppress(SpectralError, psycopg.Error):
            self._map_files()
        named = relation_of(m.group(1), self._files)
        return line if named == m.group(1) else f"{line} [{named}]"

    def _map_files(self) -> None:
        """Which relation each file is, in every database (read while the copy runs)."""
        if self._files:
            return
        with connect(self.dsn) as conn:
            names = [r[0] for r in conn.execute(
                "select datname from pg_database where datallowconn order by 1").fetchall()]
        for name in names:
            with connect(make_conninfo(self.dsn, dbname=name)) as conn:
                self._files.update((str(p), str(n)) for p, n in
                                   conn.execute(FILE_MAP_SQL).fetchall())


def _said(exc: Exception) -> str:
    return exc.message if isinstance(exc, SpectralError) else str(exc).strip()


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"
