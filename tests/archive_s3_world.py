"""A team's plain archive in S3, set up the way a team would, never through spectral: a
PostgreSQL the test starts itself whose archive_command is a small boto3 script run by the
server's OS user (from the barman virtualenv, which has boto3 and which that user can execute),
pushing each WAL file to s3://<bucket>/pg/wal (plain or gzip); base backups by pg_basebackup
on the server's host, copied into s3://<bucket>/pg/base/<name>/ file by file (as `aws s3 sync`
does: objects only, no empty folders); a role for spectral with only pg_read_all_data and
pg_monitor; and fingerprints of everything spectral must never change: every object's key and
ETag, and the live pg_settings."""

from __future__ import annotations

import contextlib
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from attach_world import TeamStanza, in_team_file
from barman_world import BARMAN_VENV, PlainS3, barman_bin_dir, plain_s3_server
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.runner import run

# the team's archive_command: like `test ! -f dest && cp %p dest`, an existing object is
# success only when it holds the same bytes (PostgreSQL's advice for an archive_command)
PUSH_WAL = '''import gzip, hashlib, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
path, name, endpoint, bucket, prefix, compress = sys.argv[1:]
with open(path, "rb") as f:
    body = f.read()
if compress == "gz":
    body, name = gzip.compress(body, mtime=0), name + ".gz"
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
key = prefix + "/" + name
try:
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
except ClientError:
    etag = None
if etag is not None:
    sys.exit(0 if etag == hashlib.md5(body).hexdigest() else 1)
s3.put_object(Bucket=bucket, Key=key, Body=body)
'''


@dataclass
class TeamS3Archive:
    """The team's server, its WAL prefix (filled by its archive_command) and base backups."""

    root: Path
    cluster: Cluster
    s3: PlainS3
    compress: str | None
    bucket: str = field(default_factory=lambda: f"team-{secrets.token_hex(6)}")

    @property
    def base_url(self) -> str:
        return f"s3://{self.bucket}/pg/base"

    @property
    def wal_url(self) -> str:
        return f"s3://{self.bucket}/pg/wal"

    @property
    def dsn(self) -> str:
        return (f"host={self.cluster.socket_dir} port={self.cluster.port} user=drill "
                f"dbname=app")

    sql = TeamStanza.sql
    commit = TeamStanza.commit
    archived_now = TeamStanza.archived_now
    live_settings = TeamStanza.live_settings

    def basebackup(self, name: str, *args: str, zstd: bool = False) -> Path:
        """pg_basebackup on the server's host (`args`: -Ft, --compress ...; `zstd`: the tars
        compressed by the team afterwards), then each file copied to pg/base/<name>/."""
        dest = self.root / "staging" / name
        run([str(self.cluster.bins.path("pg_basebackup")), "-D", str(dest), "-c", "fast",
             "-h", str(self.cluster.socket_dir), "-p", str(self.cluster.port), "-U", "postgres",
             *args], timeout=600, run_as=server_identity())
        if zstd:
            for tar in dest.glob("*.tar"):
                run(["zstd", "-q", "--rm", str(tar)], timeout=120, run_as=server_identity())
        client = self.s3.client()
        for p in sorted(dest.rglob("*")):
            if p.is_file() and not p.is_symlink():
                client.upload_file(str(p), self.bucket, f"pg/base/{name}/{p.relative_to(dest)}")
        return dest

    # ---- what spectral must never change ---------------------------------------------------
    def objects(self) -> dict[str, str]:
        """Every object of the bucket: key -> ETag."""
        pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {o["Key"]: o["ETag"] for p in pages for o in p.get("Contents", [])}

    def untouched(self) -> tuple[dict[str, str], list[tuple[str, str]], str]:
        return self.objects(), self.live_settings(), ""


def push_command(script: Path, team: TeamS3Archive) -> str:
    python = BARMAN_VENV / "bin" / "python"
    words = [str(python), str(script), "%p", "%f", team.s3.endpoint, team.bucket, "pg/wal",
             team.compress or "none"]
    return " ".join(w if w.startswith("%") else shlex.quote(w) for w in words)


@contextlib.contextmanager
def team_s3_archive(work_dir: Path, bins: PgBinaries,
                    compress: str | None) -> Iterator[TeamS3Archive]:
    """The team's server (running), archiving into an S3 prefix of a moto server, app.ledger
    holding ids 1..100; no base backup yet."""
    barman_bin_dir()        # the virtualenv with boto3 the server user runs
    root = make_owned_dir(work_dir / "team", 0o755)
    make_owned_dir(root / "staging", 0o755)
    script = root / "push_wal.py"
    script.write_text(PUSH_WAL)
    script.chmod(0o644)
    with plain_s3_server() as s3:
        cluster = Cluster(bins, root / "data", socket_dir_for(root / "run"), free_port(),
                          root / "log" / "postgres.log", port_chosen=True, env=s3.env)
        team = TeamS3Archive(root, cluster, s3, compress)
        s3.client().create_bucket(Bucket=team.bucket)
        # the team chose 1 MB WAL segments (initdb --wal-segsize=1): read in their own size,
        # and a sixteenth of the bytes through the S3 server per switch
        cluster.initdb(conf={"wal_level": "replica", "track_commit_timestamp": "on",
                             "max_wal_senders": "5"}, wal_segsize_mb=1)
        in_team_file(cluster, {"archive_mode": "on",
                               "archive_command": push_command(script, team)})
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
