"""A team's Barman Cloud backups, set up the way a team would, never through spectral: barman
from PyPI (its `cloud` extra) in a virtualenv the server OS user can execute, an S3-compatible
server (moto, plain HTTP), a PostgreSQL the test starts itself whose archive_command is
barman-cloud-wal-archive, backups by barman-cloud-backup run as the server user on its host,
a role for spectral with only pg_read_all_data and pg_monitor, and fingerprints of everything
spectral must never change: every object's key and ETag, and the live pg_settings."""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attach_world import TeamStanza
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.runner import run

# barman[cloud] in a virtualenv made from Debian's python3: /root (where the tests' Python
# lives) is not readable by the server user, who runs barman-cloud-wal-archive
BARMAN_VENV = Path(os.environ.get("SPECTRAL_BARMAN_VENV", "/opt/spectral-barman"))
SERVER_NAME = "team"


def barman_bin_dir() -> Path:
    """The barman-cloud programs, installed on first use (what dev.py does on a new machine)."""
    bin_dir = BARMAN_VENV / "bin"
    if not (bin_dir / "barman-cloud-wal-restore").exists():
        run(["/usr/bin/python3", "-m", "venv", str(BARMAN_VENV)], timeout=300)
        run([str(bin_dir / "pip"), "install", "-q", "barman[cloud]"], timeout=900)
    return bin_dir


@dataclass
class PlainS3:
    endpoint: str
    key_id: str
    secret: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                            config=Config(s3={"addressing_style": "path"}))

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def plain_s3_server() -> Iterator[PlainS3]:
    """moto's S3 on 127.0.0.1 over plain HTTP, threaded (barman-cloud opens several
    connections at once), in a thread of the test process, stopped by the test."""
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", port, app, threaded=True,
                         request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PlainS3(f"http://127.0.0.1:{port}", "AKIA" + secrets.token_hex(8).upper(),
                      secrets.token_hex(20))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def keys_checked() -> Iterator[None]:
    """moto checks every request's keys against its IAM while inside (none are known there, so
    every key is one that does not work); the team's archive_command fails meanwhile and
    PostgreSQL retries it after. moto's switch is global to the process: always put back."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before


@dataclass
class TeamBarman:
    """The team's server and its Barman Cloud destination."""

    root: Path
    cluster: Cluster
    s3: PlainS3
    bin_dir: Path
    # moto keeps its buckets in the process across servers: one of its own for each team
    bucket: str = field(default_factory=lambda: f"team-{secrets.token_hex(6)}")

    @property
    def destination(self) -> str:
        return f"s3://{self.bucket}/pg"

    @property
    def dsn(self) -> str:
        return (f"host={self.cluster.socket_dir} port={self.cluster.port} user=drill "
                f"dbname=app")

    sql = TeamStanza.sql
    commit = TeamStanza.commit
    archived_now = TeamStanza.archived_now
    live_settings = TeamStanza.live_settings

    def barman_backup(self) -> str:
        """barman-cloud-backup on the server's host as the server user; the new backup's id."""
        before = set(self.backup_ids())
        run([str(self.bin_dir / "barman-cloud-backup"), "--cloud-provider", "aws-s3",
             "--endpoint-url", self.s3.endpoint, "--immediate-checkpoint", "-z",
             "-h", str(self.cluster.socket_dir), "-p", str(self.cluster.port), "-U", "postgres",
             self.destination, SERVER_NAME], timeout=600, env=self.s3.env,
            run_as=server_identity(), forks=True)
        (new,) = set(self.backup_ids()) - before
        return new

    def backup_ids(self) -> list[str]:
        keys = self.objects()
        return sorted({k.split("/")[3] for k in keys
                       if k.startswith(f"pg/{SERVER_NAME}/base/") and k.endswith("backup.info")})

    # ---- what spectral must never change ---------------------------------------------------
    def objects(self) -> dict[str, str]:
        """Every object of the bucket: key -> ETag."""
        pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {o["Key"]: o["ETag"] for p in pages for o in p.get("Contents", [])}

    def untouched(self) -> tuple[dict[str, str], list[tuple[str, str]], str]:
        return self.objects(), self.live_settings(), ""


def wal_archive_command(bin_dir: Path, endpoint: str, destination: str) -> str:
    return (f"{shlex.quote(str(bin_dir / 'barman-cloud-wal-archive'))} --cloud-provider aws-s3 "
            f"--endpoint-url {endpoint} -z {destination} {SERVER_NAME} %p")


@contextlib.contextmanager
def team_barman(work_dir: Path, bins: PgBinaries) -> Iterator[TeamBarman]:
    """The team's server (running), archiving with barman-cloud-wal-archive into a bucket of a
    moto server, app.ledger holding ids 1..100; no backup yet."""
    bin_dir = barman_bin_dir()
    root = make_owned_dir(work_dir / "team", 0o755)
    with plain_s3_server() as s3:
        cluster = Cluster(bins, root / "data", socket_dir_for(root / "run"), free_port(),
                          root / "log" / "postgres.log", port_chosen=True, env=s3.env)
        team = TeamBarman(root, cluster, s3, bin_dir)
        s3.client().create_bucket(Bucket=team.bucket)
        # the team chose 1 MB WAL segments (initdb --wal-segsize=1): read in their own size,
        # and a sixteenth of the bytes through the S3 server per switch
        cluster.initdb(conf={"wal_level": "replica", "track_commit_timestamp": "on",
                             "max_wal_senders": "5"}, wal_segsize_mb=1)
        # in the team's own postgresql.conf, which travels in every backup of the data
        # directory: a restored copy must not archive into the team's destination with it
        conf = cluster.data_dir / "postgresql.conf"
        command = wal_archive_command(bin_dir, s3.endpoint, team.destination)
        conf.write_text(conf.read_text() + f"\narchive_mode = on\narchive_command = "
                        f"'{command}'\n")
        cluster.start()
        try:
            with connect(cluster.conninfo()) as c:
                c.execute("create database app")
            team.sql("create schema app; create table app.ledger (id int primary key, "
                     "note text); insert into app.ledger select g, 'base' "
                     "from generate_series(1, 100) g;"
                     "create role drill login; grant pg_read_all_data, pg_monitor to drill")
            yield team
        finally:
            cluster.stop(timeout=30, discard=True)
