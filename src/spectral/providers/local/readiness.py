"""The runbook's PITR activation steps 1 and 2 for a local environment: a verified base backup
(the local "Pro") and continuous WAL streaming (the local "PITR add-on")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral.providers.base import Backup, ReadinessItem, Verification

if TYPE_CHECKING:
    from spectral.pg.cluster import Cluster


def readiness(backups: list[Backup], cluster: Cluster | None) -> list[ReadinessItem]:
    """From the repository's backups and the server (None: not running)."""
    verified = [b for b in backups if b.verification is Verification.VERIFIED]
    streaming, stream_note = False, "the environment's server is not running"
    if cluster is not None:
        with cluster.connect() as conn:
            row = conn.execute("select sync_state from pg_stat_replication "
                               "where application_name = 'spectral_stream'").fetchone()
        streaming = row is not None
        stream_note = (f"pg_receivewal streaming ({row[0]})" if row
                       else "no WAL stream (spectral dr wal stream)")
    backup_note = (f"verified base backup {verified[-1].id}" if verified
                   else "no verified base backup (spectral dr backup)")
    return [ReadinessItem("daily base backups in place (the local Pro)", bool(verified),
                          backup_note),
            ReadinessItem("PITR enabled: continuous WAL streaming", streaming, stream_note)]
