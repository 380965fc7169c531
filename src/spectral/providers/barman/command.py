"""The barman-cloud programs spectral runs, and only these, all reading: barman-cloud-backup-list
(the catalog), barman-cloud-restore (a backup into a throwaway data directory) and
barman-cloud-wal-restore (one WAL file; also the restored server's restore_command). Never
barman-cloud-backup, -wal-archive, -backup-delete or -backup-keep.

Every command runs as the server OS user (it owns the throwaway data directories and the WAL
mirror), with the keys in its environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY):
never on its command line, in a file or in spectral's output. Command lines are pure functions
(unit-tested); the WAL listing is boto3's, in this process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spectral.config.secrets import resolve_secret
from spectral.errors import CommandError, ConfigError, CouldNotVerify
from spectral.pg.osuser import server_identity
from spectral.providers.barman.settings import BarmanCloudConfig
from spectral.providers.local.recovery import command_word
from spectral.runner import run

LIST_TIMEOUT = 300
WAL_TIMEOUT = 600
RESTORE_TIMEOUT = 6 * 3600
# what barman-cloud-wal-archive may append to a WAL file's name (its --gzip, --bzip2, ...)
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".snappy", ".xz", ".lz4", ".zst")


def common_args(cfg: BarmanCloudConfig) -> list[str]:
    """What every barman-cloud program is given first (pure)."""
    args = ["--cloud-provider", "aws-s3"]
    if cfg.endpoint_url is not None:
        args += ["--endpoint-url", cfg.endpoint_url]
    return args


def list_argv(cfg: BarmanCloudConfig) -> list[str]:
    return [str(cfg.bin_dir / "barman-cloud-backup-list"), *common_args(cfg),
            "--format", "json", cfg.destination, cfg.server_name]


def restore_argv(cfg: BarmanCloudConfig, backup_id: str, data: Path,
                 extra: list[str] | None = None) -> list[str]:
    return [str(cfg.bin_dir / "barman-cloud-restore"), *common_args(cfg), *(extra or []),
            cfg.destination, cfg.server_name, backup_id, str(data)]


def wal_restore_argv(cfg: BarmanCloudConfig, name: str, dest: str, spool: Path, *,
                     no_partial: bool = False) -> list[str]:
    """One WAL file to `dest`; `spool` is spectral's own (barman-cloud-wal-restore reads a
    file already there as if prefetched, so never the team's /var/tmp/walrestore)."""
    return [str(cfg.bin_dir / "barman-cloud-wal-restore"), *common_args(cfg),
            *(["--no-partial"] if no_partial else []), "--spool-dir", str(spool),
            cfg.destination, cfg.server_name, name, dest]


def restore_command(cfg: BarmanCloudConfig, spool: Path) -> str:
    """The restored server's restore_command (pure; %f and %p are PostgreSQL's)."""
    # --no-partial: recovery asks for whole segments; a promoted standby's .partial one is
    # not handed over in their place (barman's own advice for a restore_command)
    words = wal_restore_argv(cfg, "%f", "%p", spool, no_partial=True)
    return " ".join(w if w in ("%f", "%p") else command_word(w) for w in words)


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


class BarmanCloud:
    """The team's Barman Cloud destination, reached with its keys (resolved once, when first
    needed; registered with the redaction layer by `resolve_secret`)."""

    def __init__(self, cfg: BarmanCloudConfig, base_dir: Path | None) -> None:
        self.cfg, self.base_dir = cfg, base_dir
        self._env: dict[str, str] | None = None
        self._client: Any = None

    def describe(self) -> str:
        return f"Barman Cloud server {self.cfg.server_name!r} in {self.cfg.destination}"

    def env(self) -> dict[str, str]:
        """The keys, for a child process's environment."""
        if self._env is None:
            env = {"AWS_DEFAULT_REGION": self.cfg.region}
            if self.cfg.access_key_id and self.cfg.secret_access_key:
                env["AWS_ACCESS_KEY_ID"] = resolve_secret(self.cfg.access_key_id,
                                                          base_dir=self.base_dir)
                env["AWS_SECRET_ACCESS_KEY"] = resolve_secret(self.cfg.secret_access_key,
                                                              base_dir=self.base_dir)
            self._env = env
        return dict(self._env)

    def run(self, argv: list[str], *, timeout: float) -> str:
        program = Path(argv[0]).name
        if not Path(argv[0]).is_file():
            raise ConfigError(f"barman_cloud.bin_dir {str(self.cfg.bin_dir)!r} has no "
                              f"{program}",
                              hint="install barman[cloud] from PyPI in a virtualenv the server "
                                   "OS user can execute and set barman_cloud.bin_dir to its "
                                   "bin folder (docs/attach.md)")
        try:
            return run(argv, timeout=timeout, env=self.env(), run_as=server_identity(),
                       forks=True).stdout
        except CommandError as exc:
            raise CouldNotVerify(f"{self.describe()}: {exc.message}") from None

    def backups(self) -> list[dict[str, Any]]:
        """barman-cloud-backup-list's catalog, as JSON."""
        out = self.run(list_argv(self.cfg), timeout=LIST_TIMEOUT)
        try:
            listed = json.loads(out)["backups_list"]
        except (ValueError, KeyError, TypeError):
            raise CouldNotVerify(f"{self.describe()}: barman-cloud-backup-list printed no "
                                 f"catalog: {last_line(out)!r}") from None
        return [b for b in listed if isinstance(b, dict)]

    def restore(self, backup_id: str, data: Path, extra: list[str] | None = None) -> None:
        self.run(restore_argv(self.cfg, backup_id, data, extra), timeout=RESTORE_TIMEOUT)

    def wal_restore(self, name: str, dest: Path, spool: Path) -> None:
        self.run(wal_restore_argv(self.cfg, name, str(dest), spool), timeout=WAL_TIMEOUT)

    # ---- the WAL listing (boto3, read only: list_objects_v2) -------------------------------
    def client(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError("reading a Barman Cloud destination needs boto3 in spectral's "
                              "environment", hint="pip install 'spectral[s3]'") from None
        env = self.env()
        return boto3.client("s3", endpoint_url=self.cfg.endpoint_url,
                            region_name=self.cfg.region,
                            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 3}))

    def keys(self, under: str, *, first_only: bool = False) -> list[str]:
        """Every object key under '<prefix>/<server_name>/<under>' (at most one with
        `first_only`)."""
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = self.cfg.prefix + under
        try:
            pages = self.client().get_paginator("list_objects_v2").paginate(
                Bucket=self.cfg.bucket, Prefix=prefix,
                PaginationConfig={"MaxItems": 1} if first_only else {})
            return [str(o["Key"]) for page in pages for o in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise CouldNotVerify(f"{self.describe()}: listing s3://{self.cfg.bucket}/{prefix} "
                                 f"failed: {last_line(str(exc))}") from None
