"""`spectral db export-rules | import-rules | rules-hook | watch-rules`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spectral.cli.state import state
from spectral.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_OUT = Path("data/rules")
PARTNER = typer.Option(None, "--partner", help="Partner slug (core.partners.slug).")
ALL = typer.Option(False, "--all", help="Every partner with a partner-owned corpus.")

hook_app = typer.Typer(no_args_is_help=True, help="Triggers that announce every change to the "
                                                  "rule tables (LISTEN/NOTIFY).")


def _which(partner: str | None, all_: bool) -> list[str] | None:
    from spectral.rules.layout import check_partner

    if bool(partner) == all_:
        raise UsageError("give exactly one of --partner P or --all")
    return None if all_ else [check_partner(str(partner))]


def export_cmd(ctx: typer.Context, partner: str | None = PARTNER, all_: bool = ALL,
               out: Path = typer.Option(DEFAULT_OUT, "--out", help="Output folder.")) -> None:
    """Export a partner's rule corpus to OUT/<partner>/: one canonical JSON file per rule and a
    manifest with counts and SHA-256s; README.md created once. Unchanged rules change no file."""
    from spectral.pg.conn import connect
    from spectral.rules.export import export

    st = state(ctx)
    names = _which(partner, all_)
    with st.environment().database() as dsn, connect(dsn, autocommit=True) as conn:
        results = export(conn, names, out)
    data = [{"partner": r.partner, "corpora": r.corpora, "rules": r.rules,
             "written": len(r.written), "removed": len(r.removed),
             "corpus_sha256": r.corpus_sha256, "readme_created": r.readme_created,
             "folder": str(out / r.partner)} for r in results]

    def human(c: Console) -> None:
        if not results:
            c.print("no partner-owned corpus in the database: nothing to export (a partner's "
                    "corpus is platform.corpora with owner = 'partner')")
        for r in results:
            c.print(f"{r.partner}: {r.rules:,} rules in {r.corpora} corpora -> {out / r.partner}"
                    f" ({len(r.written)} file(s) written, {len(r.removed)} removed; corpus "
                    f"sha256 {r.corpus_sha256[:16]})")

    st.emit(data, human)


def import_cmd(ctx: typer.Context, partner: str | None = PARTNER, all_: bool = ALL,
               src: Path = typer.Option(DEFAULT_OUT, "--from", help="Folder of exports."),
               replace: bool = typer.Option(False, "--replace", help="Replace a corpus that "
                                            "is already in the database.")) -> None:
    """Regenerate partner corpora from their exported files: validated first (checksums,
    references, duplicates), then loaded in one transaction, all or nothing."""
    from spectral.pg.conn import connect
    from spectral.rules.importer import load, read_folder

    st = state(ctx)
    names = _which(partner, all_)
    if names is None:
        names = sorted(p.name for p in src.iterdir() if (p / "manifest.json").exists()) \
            if src.is_dir() else []
        if not names:
            raise UsageError(f"{src}: no exported partner folders")
    loaded = [read_folder(src, n) for n in names]     # every folder checked before any load
    with st.environment().database() as dsn, connect(dsn, autocommit=True) as conn:
        counts = {d.partner: load(conn, d, replace=replace) for d in loaded}
    def human(c: Console) -> None:
        for p, n in counts.items():
            c.print(f"{p}: imported {n['rules']:,} rules in {n['corpora']} corpora")

    st.emit(counts, human)


@hook_app.command("install")
def hook_install_cmd(ctx: typer.Context) -> None:
    """Install the triggers (schema spectral_hooks, triggers on the platform rule tables)."""
    from spectral.pg.conn import connect
    from spectral.rules import hook as hook_mod

    st = state(ctx)
    with st.environment().database() as dsn, connect(dsn) as conn:
        hook_mod.install(conn)
        info = hook_mod.status(conn)
    st.emit(info, lambda c: c.print(f"rules hook installed; notifications on channel "
                                    f"{info['channel']}"))


@hook_app.command("uninstall")
def hook_uninstall_cmd(ctx: typer.Context) -> None:
    """Remove the triggers and the spectral_hooks schema."""
    from spectral.pg.conn import connect
    from spectral.rules import hook as hook_mod

    st = state(ctx)
    with st.environment().database() as dsn, connect(dsn) as conn:
        hook_mod.uninstall(conn)
    st.emit({"installed": False}, lambda c: c.print("rules hook removed"))


@hook_app.command("status")
def hook_status_cmd(ctx: typer.Context) -> None:
    """Whether the hook is installed on every rule table (exit 1 if not)."""
    from spectral.pg.conn import connect
    from spectral.rules import hook as hook_mod

    st = state(ctx)
    with st.environment().database() as dsn, connect(dsn) as conn:
        info = hook_mod.status(conn)
    st.emit(info, lambda c: c.print("rules hook: " + ("installed" if info["installed"]
                                                      else "NOT installed") + " " +
                                    str({t: ok for t, ok in info["tables"].items()})))
    raise typer.Exit(0 if info["installed"] else 1)


def watch_cmd(ctx: typer.Context, partner: str | None = PARTNER,
              out: Path = typer.Option(DEFAULT_OUT, "--out", help="Output folder."),
              commit: bool = typer.Option(False, "--commit", help="git commit the changed "
                                          "files, with a message naming what changed."),
              debounce: float = typer.Option(0.5, "--debounce", min=0.0, help="Seconds of quiet "
                                             "before re-exporting a burst."),
              seconds: float | None = typer.Option(None, "--seconds", help="Stop after this "
                                                   "long (default: until Ctrl-C).")) -> None:
    """Listen for the hook's notifications and re-export the partners that changed, coalescing
    bursts; after a lost connection, reconnect and re-export everything."""
    from spectral.pg.conn import connect
    from spectral.rules import hook as hook_mod
    from spectral.rules.layout import check_partner
    from spectral.rules.watch import git_available, watch

    st = state(ctx)
    if partner:
        check_partner(partner)
    if commit and not git_available(out if out.exists() else Path.cwd()):
        raise UsageError(f"--commit: {out} is not inside a git work tree")
    deadline = None if seconds is None else time.monotonic() + seconds
    with st.environment().database() as dsn:
        with connect(dsn) as conn:
            if not hook_mod.status(conn)["installed"]:
                raise UsageError("the rules hook is not installed",
                                 hint="spectral db rules-hook install")
        stats = watch(dsn, out, only=partner, commit=commit, debounce=debounce,
                      report=lambda m: st.err.print(f"watch-rules: {m}"),
                      should_stop=lambda: deadline is not None and time.monotonic() > deadline)
    st.emit({"exports": stats.exports, "reconnects": stats.reconnects, "commits": stats.commits},
            lambda c: c.print(f"watch-rules stopped: {stats.exports} export(s), "
                              f"{stats.reconnects} reconnect(s), {stats.commits} commit(s)"))


def register(app: typer.Typer) -> None:
    app.command("export-rules")(export_cmd)
    app.command("import-rules")(import_cmd)
    app.add_typer(hook_app, name="rules-hook")
    app.command("watch-rules")(watch_cmd)
