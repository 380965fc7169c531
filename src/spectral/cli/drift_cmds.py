"""`spectral dr drift accept`: a drop of a load-bearing table accepted on purpose."""

from __future__ import annotations

import typer

from spectral.cli.state import CliConfirmer, state
from spectral.errors import RefusedError

app = typer.Typer(no_args_is_help=True, help="Row-count drift of the load-bearing tables "
                                            "between drills.")


@app.command("accept")
def accept_cmd(ctx: typer.Context,
               tables: list[str] = typer.Argument(None, help="The tables whose drift is "
                                                  "expected (default: every table beyond its "
                                                  "bound in the newest drill)."),
               reason: str = typer.Option("", "--reason", help="Why the drop is expected (a "
                                          "retention purge, a deletion request); kept in the "
                                          "ledger."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Record without asking.")
               ) -> None:
    """Accept the row-count drift the newest drill reported: the named tables are compared
    with the counts it saw from the next drill on, and the acceptance is a ledger entry with
    both counts and the reason. Only a drift the newest drill reported can be accepted."""
    from spectral.drills.drift_accept import accept

    st = state(ctx)
    environment = st.environment()
    name, ledger = environment.name, environment.ledger
    record = accept(ledger.entries(), name, list(tables or []), reason)
    details = [f"{t}: {c.before} -> {c.accepted} rows, compared with {c.accepted} from the "
               f"next drill on" for t, c in record.tables.items()]
    if not CliConfirmer(yes, st.err).confirm(f"Accept this drift of {name}?", details):
        raise RefusedError("not confirmed; nothing was recorded")
    entry = ledger.record(name, record)
    st.emit(entry.to_json(), lambda c: c.print(f"{name}: {record.summary}; recorded as ledger "
                                               f"entry #{entry.seq}"))
