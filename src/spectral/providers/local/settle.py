"""After an in-place restore or an undo has promoted the environment's database: its own
settings again (the WAL summarizer included) and what recovery brought back pending."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.waits import WaitTimeout, wait_until

if TYPE_CHECKING:
    from spectral.providers.local.environment import LocalEnvironment


def pending_prepared(cluster: Cluster) -> list[str]:
    """Transactions prepared before the target and committed after it come back pending, as
    PostgreSQL's recovery brings them back, holding their locks: their gids, for the operator
    to COMMIT PREPARED or ROLLBACK PREPARED."""
    with connect(cluster.conninfo()) as conn:
        return [str(r[0]) for r in conn.execute(
            "select gid from pg_prepared_xacts order by prepared").fetchall()]


def settle(cluster: Cluster, host: LocalEnvironment) -> None:
    """After promotion: the environment's own settings again, the WAL summarizer included.
    An undo's recovery runs without it: on PostgreSQL 17+ the end-of-recovery checkpoint waits
    for it, and in the put-back directory's pg_wal (recycled segments of other histories) it
    can stop on a segment that is not its timeline's ("incorrect prev-link") and take the
    server down ("WAL summarization is not progressing"). After an undo an incremental backup
    therefore needs a full backup first (the tool says so)."""
    settings = host.own_settings()
    if settings.get("summarize_wal") == "on":
        leave_other_timelines(cluster)
    cluster.write_conf(settings)
    with connect(cluster.conninfo()) as conn:
        conn.execute("select pg_reload_conf()")


# a WAL segment of another timeline than the one the server writes ([0-9A-F]{24}: no .partial)
_OTHER_TIMELINES = ("select count(*) from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$' and "
                    "left(name, 8) <> left(pg_walfile_name(pg_current_wal_lsn()), 8)")


def leave_other_timelines(cluster: Cluster) -> None:
    """Before the WAL summarizer is turned on: no segment of an older timeline left in pg_wal.
    The summarizer (walsummarizer.c, GetOldestUnsummarizedLSN) starts at the oldest segment in
    pg_wal of the oldest timeline of the history, then follows the history's switch points. A
    restore that stops before the branch of the timeline it followed (recovery_target_timeline
    'latest': the undo's, say) gets a history copied from that timeline, whose parent runs on
    past where this directory left it: the summarizer read WAL this directory never had
    ("could not read WAL from timeline 1 ...: unexpected pageaddr"), failed every 10 s for good
    and held up each shutdown by those 10 s. With no older segment it starts on the new
    timeline. A switch to the next segment and a checkpoint let PostgreSQL recycle them (only
    those archived: it waits for the archiver); bounded, and the summarizer is turned on
    anyway (as before) if one stays."""
    with connect(cluster.conninfo()) as conn:
        conn.execute("select pg_switch_wal()")

    def gone() -> bool:
        with connect(cluster.conninfo()) as conn:
            conn.execute("checkpoint")
            row = conn.execute(_OTHER_TIMELINES).fetchone()
        return row is not None and int(row[0]) == 0

    with suppress(WaitTimeout):
        wait_until(gone, timeout=30, interval=0.1, max_interval=1.0,
                   what="the segments of older timelines to leave pg_wal")
