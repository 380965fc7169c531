"""A restore through pgBackRest: `pgbackrest restore --set --type --target --target-action`
into the instance's data directory. pgBackRest checks every file it restores against the
SHA-1 it recorded when it took the backup (src/command/restore/file.c, "actual checksum ...
does not match expected checksum"), so a restore that succeeds read only undamaged files of its
backup chain, and the chain is then marked verified. When a restore fails, `pgbackrest verify`
of that repository names every damaged file, the restore is refused with them, and the
backups they belong to are marked failed.

Recovery itself is PostgreSQL's, fetching WAL with `pgbackrest archive-get`; spectral starts
it, watches it and checks where it stopped, as for the local provider."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from spectral.errors import BackupDamaged, CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import make_owned_dir
from spectral.providers.base import Progress, RecoverableWindow, Verification
from spectral.providers.capabilities import RecoveryReached
from spectral.providers.local.recovery import command_word, pg_time
from spectral.providers.local.restore import OLDER_BACKUP, RESTORE_TIMEOUT, Recovery
from spectral.providers.local.targets import RestorePlan
from spectral.providers.local.wal import parse_lsn, segment_name, segment_of
from spectral.providers.pgbackrest import verify as verify_mod
from spectral.providers.pgbackrest.command import BINARY, PgBackRest
from spectral.providers.pgbackrest.repo import PgBackRestRepository
from spectral.recovery_target import RecoveryTarget, TargetKind, TimeTarget

AUTO_LINE_RE = re.compile(r"^\s*(?P<key>[a-z_]+)\s*=\s*'(?P<value>(?:[^']|'')*)'\s*$")
RESTORED = "restored by pgbackrest restore, every file matching its recorded checksum"
RECOVERY_KEYS = ("restore_command", "recovery_target", "recovery_target_time",
                 "recovery_target_xid", "recovery_target_lsn", "recovery_target_name",
                 "recovery_target_inclusive", "recovery_target_action",
                 "recovery_target_timeline")


def target_args(target: RecoveryTarget, pause: bool) -> list[str]:
    """pgBackRest's restore options for a target (pure; unit-tested)."""
    if target.kind is TargetKind.LATEST:
        return ["--type=default"]
    value = pg_time(target.at) if isinstance(target, TimeTarget) else str(target.value)
    args = [f"--type={target.kind.value}", f"--target={value}",
            f"--target-action={'pause' if pause else 'promote'}", "--target-timeline=latest"]
    if target.exclusive and target.kind is not TargetKind.NAME:
        args.append("--target-exclusive")
    return args


def recovery_lines(auto_conf: Path) -> dict[str, str]:
    """The recovery settings pgBackRest wrote into postgresql.auto.conf (pure parsing)."""
    out: dict[str, str] = {}
    if not auto_conf.exists():
        return out
    for line in auto_conf.read_text().splitlines():
        m = AUTO_LINE_RE.match(line)
        if m and m.group("key") in RECOVERY_KEYS:
            out[m.group("key")] = m.group("value").replace("''", "'")
    return out


class PgBackRestRestorer:
    """`RestoreSteps` (local/restore.py) through pgBackRest; recovery is PostgreSQL's."""

    # `pgbackrest restore` (and on failure `pgbackrest verify`): a restore to the latest point
    # copies while the archive is flushed and the window read
    stops_when_cancelled = True

    def __init__(self, bins: PgBinaries, repo: PgBackRestRepository, tool: PgBackRest,
                 process_max: int) -> None:
        self.bins, self.recovery = bins, Recovery(bins, repo)
        self.pgb_repo, self.tool, self.process_max = repo, tool, process_max

    def prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                         target: RecoveryTarget) -> None:
        self.recovery.prepare_recovery(cluster, conf, target)

    def recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                pause: bool, progress: Progress | None) -> RecoveryReached:
        return self.recovery.recover(cluster, restore_plan, window, pause, progress)

    def restore_command(self, data: Path | None = None) -> str:
        """`pgbackrest archive-get`; with `data`, for a server on that restored directory
        (archive-get checks that the server's working directory is its pg1-path)."""
        words = [f"--config={self.tool.conf_file}", f"--stanza={self.tool.stanza}",
                 *self.tool.options, *self.tool.per_command.get("archive-get", ())]
        if data is not None:
            words.insert(1, f"--pg1-path={data}")
        return f"{BINARY} {' '.join(map(command_word, words))} archive-get %f \"%p\""

    def check_repository(self, repo: int = 1) -> verify_mod.VerifyReport:
        """`pgbackrest verify` of one repository (pgBackRest verifies one at a time)."""
        res = self.tool.run("verify", f"--repo={repo}", "--output=text", "--verbose",
                            "--log-level-console=info", timeout=RESTORE_TIMEOUT)
        report = verify_mod.parse(res.stdout)
        self.pgb_repo.record_checks({
            label: (Verification.FAILED, "; ".join(report.backup_problems(label)))
            if report.backup_problems(label) else
            (Verification.VERIFIED, "pgbackrest verify: every file's checksum matches")
            for label in report.status})
        return report

    def materialize(self, restore_plan: RestorePlan, data: Path, progress: Progress | None,
                    *, pause: bool = False) -> dict[str, str]:
        chain = restore_plan.chain
        label = chain[-1].id
        total = max(1, chain[-1].size_bytes)
        if progress:
            progress("copy", 0, total)
        make_owned_dir(data.parent, 0o755)
        repo = self.pgb_repo.repo_of(label)
        args = [f"--pg1-path={data}", f"--set={label}", f"--repo={repo}",
                f"--process-max={self.process_max}",
                *target_args(restore_plan.target, pause)]
        try:
            self.tool.run("restore", *args, timeout=RESTORE_TIMEOUT)
        except CouldNotVerify as failed:
            shutil.rmtree(data, ignore_errors=True)
            size = self.pgb_repo.segment_size()
            first = segment_name(chain[0].timeline,
                                 segment_of(parse_lsn(chain[0].start_lsn), size), size)
            report = self.check_repository(repo)
            for b in chain:   # a file of the backup named damaged by its checksum: a FAIL
                if files := report.bad_backup_files.get(b.id):
                    raise BackupDamaged(b.id, files, hint=OLDER_BACKUP) from None
            refusal = report.refusal(chain, first)
            if refusal:
                raise CouldNotVerify(f"pgbackrest verify found damage in what this restore "
                                     f"needs, so it is refused: {refusal}",
                                     hint="a target before this backup's start restores from "
                                          "an older one; spectral dr drill functional "
                                          "--backup <id> drills another") from None
            raise failed from None
        self.pgb_repo.record_checks({b.id: (Verification.VERIFIED, RESTORED) for b in chain})
        if progress:
            progress("copy", total, total)
        # pgBackRest writes its recovery settings unquoted (a quote or a backslash in a target
        # name or a path breaks them); spectral writes its own, the same ones, quoted
        return {"restore_command": self.restore_command(data)}
