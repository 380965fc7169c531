"""Which published JSON Schema each command's `--json` output follows, and the
`schema_version` every such output carries (docs/schemas/<schema_version>.json).

`schema_version` names the schema file: `drill-result.v1` is docs/schemas/drill-result.v1.json.
It is added to what a command prints and changes nothing else: an object gets it as its first
key; a list (`dr log`, `dr instances`, ...) cannot carry a key, so each of its objects does
(wrapping the list would break every script that reads it). A change that removes or retypes a
field is a new version (`.v2`) and a new file; an added field is not."""

from __future__ import annotations

from typing import Any

KEY = "schema_version"
ERROR = "error.v1"              # the one JSON object on stderr when a command fails
FALLBACK = "output.v1"          # a command not listed below (a test fails until it is)

# command path (without the program name) -> the schema of its --json output
SCHEMAS: dict[str, str] = {
    "init": "written.v1",
    "demo": "drill-result.v1",
    "local up": "local-cluster.v1",
    "local down": "local-down.v1",
    "local status": "local-cluster.v1",
    "db export-rules": "rules-export.v1",
    "db import-rules": "rules-import.v1",
    "db watch-rules": "rules-watch.v1",
    "db migrate": "db-migrate.v1",
    "db seed": "db-seed.v1",
    "db author": "db-author.v1",
    "db reset": "db-reset.v1",
    "db reseed": "db-reseed.v1",
    "db rules-hook install": "rules-hook.v1",
    "db rules-hook uninstall": "rules-hook.v1",
    "db rules-hook status": "rules-hook.v1",
    "dr backup": "backup.v1",
    "dr backups": "backups.v1",
    "dr restore": "restore.v1",
    "dr instances": "instances.v1",
    "dr teardown": "teardown.v1",
    "dr promote": "promote.v1",
    "dr expire": "expire.v1",
    "dr status": "status.v1",
    "dr cadence": "cadence.v1",
    "dr tabletop": "recorded-tabletop.v1",
    "dr report": "written.v1",
    "dr sample": "sample.v1",
    "dr triggers": "triggers.v1",
    "dr activate-pitr": "activation.v1",
    "dr blast-radius": "blast-radius.v1",
    "dr find-damage": "damage.v1",
    "dr salvage": "salvage.v1",
    "dr portability": "portability.v1",
    "dr exit": "exit-result.v1",
    "dr fingerprint": "fingerprint-summary.v1",
    "dr compare": "comparison.v1",
    "dr snapshot": "snapshot.v1",
    "dr snapshots": "snapshots.v1",
    "dr wal stream": "wal-stream.v1",
    "dr wal status": "wal-status.v1",
    "dr drill functional": "drill-result.v1",
    "dr drill post-migration": "drill-result.v1",
    "dr drill due": "cadence-item.v1",
    "dr log": "ledger-entries.v1",
    "dr log repair": "ledger-entry.v1",
    "dr drift accept": "ledger-entry.v1",
    "dr log verify": "ledger-verify.v1",
    "dr log keygen": "signing-key.v1",
    "dr log add-key": "recorded-key.v1",
    "dr log revoke-key": "recorded-key.v1",
    "dr runbook render": "written.v1",
    "dr checklist first-partner": "checklist.v1",
    "dr incident record": "recorded-incident.v1",
    "dr evidence export": "evidence-bundle.v1",
    "dr evidence verify": "evidence-verified.v1",
    "dr playbook list": "playbooks.v1",
    "dr playbook show": "playbook.v1",
    "dr playbook run": "playbook-run.v1",
    "dr alerts test": "alerts-test.v1",
}
# a flag that changes what a command prints: its own schema (`emit(..., schema=...)`)
FLEET = "fleet-status.v1"       # dr status --all
DUE_ALL = "drills-due.v1"       # dr drill due --all [--run]

# commands that never print JSON (psql hands the terminal over)
NO_JSON = frozenset({"local psql"})


def schema_of(command_path: str) -> str:
    """The schema of a command's output, from its click command path ("spectral dr log")."""
    words = command_path.split()[1:]
    return SCHEMAS.get(" ".join(words), FALLBACK)


def stamped(data: Any, schema: str) -> Any:
    """`data` with `schema_version` added: first key of an object, of each object of a list."""
    if isinstance(data, dict):
        return {KEY: schema, **{k: v for k, v in data.items() if k != KEY}}
    if isinstance(data, list):
        return [stamped(item, schema) if isinstance(item, dict) else item for item in data]
    return data
