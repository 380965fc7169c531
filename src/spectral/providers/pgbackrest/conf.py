"""The pgBackRest configuration spectral writes for an environment, in its state directory
(never /etc), and the environment variables that carry the secrets (never the file).

Options: https://pgbackrest.org/configuration.html (pgBackRest 2.45)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spectral.config.secrets import resolve_secret
from spectral.errors import ConfigError
from spectral.providers.pgbackrest.settings import PgBackRestConfig, RepoType
from spectral.redact import register_secret


@dataclass(frozen=True)
class PgBackRestPaths:
    root: Path          # <state_dir>/pgbackrest

    @property
    def conf_file(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def lock_dir(self) -> Path:
        return self.root / "lock"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def spool_dir(self) -> Path:
        return self.root / "spool"

    @property
    def mirror(self) -> Path:
        """WAL fetched with archive-get for reading (find-damage, the window's tail)."""
        return self.root / "mirror"

    @property
    def default_repo(self) -> Path:
        return self.root / "repo"


@dataclass(frozen=True)
class ClusterAddress:
    data_dir: Path
    port: int
    socket_dir: Path


def repo_path(cfg: PgBackRestConfig, index: int, paths: PgBackRestPaths) -> str:
    repo = cfg.repositories[index]
    if repo.path is not None:
        return repo.path
    return str(paths.default_repo) if repo.type is RepoType.POSIX else "/pgbackrest"


def render(cfg: PgBackRestConfig, paths: PgBackRestPaths, cluster: ClusterAddress) -> str:
    """The configuration file (pure; unit-tested). No secret is ever in it."""
    lines = ["# Written by spectral for this environment. Changes here are overwritten.",
             "[global]",
             f"lock-path={paths.lock_dir}",
             f"log-path={paths.log_dir}",
             f"spool-path={paths.spool_dir}",
             "log-level-console=off",
             "log-level-stderr=warn",
             "log-level-file=info",
             "start-fast=y",
             "archive-check=y",
             f"compress-type={cfg.compress_type}",
             f"process-max={cfg.process_max}"]
    for i, repo in enumerate(cfg.repositories, start=1):
        key = f"repo{i}"
        lines += [f"{key}-type={repo.type.value}", f"{key}-path={repo_path(cfg, i - 1, paths)}",
                  f"{key}-retention-full={cfg.retention_full}",
                  # small files combined: far fewer objects to write, list and verify
                  f"{key}-bundle=y"]
        if repo.type is RepoType.S3:
            assert repo.s3_endpoint is not None
            host, _, port = repo.s3_endpoint.partition(":")
            lines += [f"{key}-s3-endpoint={host}", f"{key}-s3-bucket={repo.s3_bucket}",
                      f"{key}-s3-region={repo.s3_region}",
                      f"{key}-s3-uri-style={repo.s3_uri_style.value}",
                      f"{key}-storage-verify-tls={'y' if repo.s3_verify_tls else 'n'}"]
            if port:
                lines.append(f"{key}-storage-port={port}")
            if repo.s3_ca_file is not None:
                lines.append(f"{key}-storage-ca-file={repo.s3_ca_file}")
    lines += ["", f"[{cfg.stanza}]", f"pg1-path={cluster.data_dir}", f"pg1-port={cluster.port}",
              f"pg1-socket-path={cluster.socket_dir}", "pg1-user=postgres", ""]
    # pgBackRest's ini has no quoting: a value runs to the end of its line, so spaces and
    # quotes in a path are kept as they are, and only a line break cannot be written
    broken = next((ln for ln in lines if "\n" in ln or "\r" in ln), None)
    if broken is not None:
        raise ConfigError(f"a pgBackRest setting would hold a line break: "
                          f"{broken.split('=', 1)[0]} ({broken!r})")
    return "\n".join(lines)


def secret_env(cfg: PgBackRestConfig, base_dir: Path | None) -> dict[str, str]:
    """PGBACKREST_REPO<n>_S3_KEY and _KEY_SECRET, resolved from their references and
    registered for redaction: pgBackRest reads them from its environment."""
    env: dict[str, str] = {}
    for i, repo in enumerate(cfg.repositories, start=1):
        for ref, var in ((repo.s3_key, "S3_KEY"), (repo.s3_key_secret, "S3_KEY_SECRET")):
            if ref is None:
                continue
            value = resolve_secret(ref, base_dir=base_dir)
            register_secret(value)
            env[f"PGBACKREST_REPO{i}_{var}"] = value
    return env

