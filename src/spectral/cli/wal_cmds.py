"""`spectral dr wal stream | status`: continuous WAL streaming and the live RPO, through the
provider's WalStream and WalStatus capabilities (None: one line saying what instead)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from spectral.cli.backup_cmds import needed
from spectral.cli.state import state

if TYPE_CHECKING:
    from rich.console import Console

wal_app = typer.Typer(no_args_is_help=True, help="Continuous WAL: streaming and the live RPO.")


@wal_app.command("stream")
def wal_stream_cmd(ctx: typer.Context,
                   synchronous: bool = typer.Option(False, "--synchronous", help="Make the "
                                                    "stream a synchronous standby: a commit "
                                                    "returns once its WAL is on disk here "
                                                    "(RPO 0; commits wait while it is down)."),
                   seconds: float | None = typer.Option(None, "--seconds", help="Stop after this "
                                                        "long (default: until Ctrl-C)."),
                   reconnect_for: float = typer.Option(3600.0, "--reconnect-for", min=0,
                                                       help="How long to wait out a server "
                                                       "that is down or restarting before the "
                                                       "stream stops (seconds).")) -> None:
    """Run pg_receivewal with a replication slot into the backup repository, supervised:
    restarted when it exits, through restarts of the server and onto the new timeline of an
    in-place restore; stopped (and the synchronous setting removed) when this ends."""
    import time as _time

    st = state(ctx)
    p = st.environment().provider
    stream = needed(p, p.wal_stream(), "spectral dr wal stream", "wal_stream")
    deadline = None if seconds is None else _time.monotonic() + seconds
    status = stream.stream(synchronous=synchronous,
                           report=lambda msg: st.err.print(f"wal stream: {msg}"),
                           should_stop=lambda: deadline is not None
                           and _time.monotonic() > deadline, outage_limit=reconnect_for)
    st.emit(status.to_json(), lambda c: c.print(f"wal stream stopped after {status.restarts} "
                                                f"restart(s)"))


@wal_app.command("status")
def wal_status_cmd(ctx: typer.Context) -> None:
    """The archive's and the stream's lag in bytes and seconds (the live RPO), the stream's
    state, and whether commits are blocked by a synchronous stream that is not there."""
    st = state(ctx)
    p = st.environment().provider
    info = needed(p, p.wal_status(), "spectral dr wal status", "wal_status").read()

    def human(c: Console) -> None:
        a = info["archive"]
        c.print(f"current LSN {info['current_lsn']}; archived through "
                f"{a['archived_through_lsn'] or 'nothing yet'} ({a['last_archived_wal'] or '-'}, "
                f"{a['seconds_since_last_archive'] or '-'} s ago); {a['failed_count']} failures")
        if info["released"]:
            c.print(f"[bold red]{info['released']}[/]")
        if info["commits_blocked"]:
            c.print(f"[bold red]{info['commits_blocked']}[/]")
        _print_stream(c, info)
        c.print(f"live RPO: {info['rpo_bytes'] if info['rpo_bytes'] is not None else '-'} bytes, "
                f"{info['rpo_seconds']} s")

    st.emit(info, human)


def _print_stream(c: Console, info: dict[str, Any]) -> None:
    s, sup, state_ = info["stream"], info.get("supervisor"), info["stream_state"]
    if s:
        lag = ("no flush reported yet" if s["lag_bytes"] is None else
               f"lag {s['lag_bytes']} bytes, {s['lag_seconds']} s")
        c.print(f"stream: {s['sync_state']}, flushed {s['flush_lsn'] or '-'}, {lag}")
    elif state_ == "dead" and sup:
        c.print(f"stream: not connected; its supervisor (pid {sup['supervisor_pid']}) is gone "
                f"(last recorded {sup.get('state', '?')} at {sup.get('updated_at', '?')})")
    elif sup and sup.get("alive"):
        failing = "[bold red]stream failing[/]: " if sup.get("failing") else ""
        c.print(f"stream: not connected ({state_} since {sup.get('state_since', '?')}); "
                f"{failing}pg_receivewal restarted {sup['restarts']} time(s); last: "
                f"{sup.get('last_exit') or '-'}")
    else:
        c.print("stream: not connected; no `spectral dr wal stream` is running; the RPO is "
                "archive_timeout")
