"""A managed cluster is a host plus a repository strategy (issue 28 item 3): no provider class
extends another provider's, the helpers take the parts they use, and a new strategy plugs into
the host and the managed provider without changing either. No server is started."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from spectral.errors import UsageError
from spectral.pg.binaries import PgBinaries
from spectral.providers.base import Backup, ReadinessItem
from spectral.providers.capabilities import ExpirePlan, Options, refuse_options
from spectral.providers.local.environment import LocalEnvironment
from spectral.providers.local.provider import ManagedProvider
from spectral.providers.local.repo import LocalRepository
from spectral.providers.local.restore import Restorer

PROVIDERS = Path(__file__).resolve().parent.parent / "src" / "spectral" / "providers"


def _imported_from_other_providers(path: Path, tree: ast.Module) -> set[str]:
    own = path.relative_to(PROVIDERS).parts[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "spectral.providers.") and (node.module or "").split(".")[2] not in (own,):
            names |= {a.asname or a.name for a in node.names}
    return names


def test_no_provider_class_extends_another_providers() -> None:
    found = []
    for path in sorted(PROVIDERS.rglob("*.py")):
        if path.parent == PROVIDERS:
            continue     # base.py, capabilities.py, repository.py, registry.py: the seams
        tree = ast.parse(path.read_text())
        foreign = _imported_from_other_providers(path, tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found += [f"{path.relative_to(PROVIDERS)}: {node.name}({ast.unparse(b)})"
                          for b in node.bases if ast.unparse(b) in foreign]
    assert found == []


@pytest.mark.parametrize("helper", ["inplace.py", "expire.py", "readiness.py"])
def test_helpers_take_the_parts_they_use_not_the_provider(helper: str) -> None:
    text = (PROVIDERS / "local" / helper).read_text()
    assert "LocalProvider" not in text and "ManagedProvider" not in text


def test_features_not_providers_write_the_ledger() -> None:
    """A backend owes entries (ledger/outbox.py) and knows entry payloads; it never opens or
    appends to the ledger itself."""
    allowed = {"spectral.ledger.outbox", "spectral.ledger.payloads"}
    found = []
    for path in sorted(PROVIDERS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                       [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.relative_to(PROVIDERS)}: {m}" for m in modules
                      if m.startswith("spectral.ledger") and m not in allowed]
        if ".append(" in path.read_text() and "ledger.append" in path.read_text():
            found.append(f"{path.relative_to(PROVIDERS)}: ledger.append")
    assert found == []


class ArchiveFolder:
    """A strategy nobody wrote yet (a plain folder of WAL, say): only what the protocol asks."""

    kind = "folder"
    streams_wal = False

    def __init__(self, host: LocalEnvironment) -> None:
        self.host = host
        self.repo = LocalRepository(host.paths.state_dir / "folder")
        self.events: list[str] = []

    def server_settings(self) -> dict[str, str]:
        return {"archive_mode": "on", "archive_command": "cp %p /somewhere/%f"}

    def server_env(self) -> dict[str, str]:
        return {"FOLDER_TOKEN": "x"}

    def prepare(self) -> None:
        self.events.append("prepare")

    def before_create(self) -> None: ...

    def after_create(self, cluster: Any) -> None: ...

    def on_open(self, cluster: Any) -> None: ...

    def before_start(self, cluster: Any) -> None: ...

    def after_start(self, cluster: Any) -> None: ...

    def describe(self, environment: str) -> str:
        return f"environment {environment} (a WAL folder)"

    def repository(self) -> LocalRepository:
        return self.repo

    def forget(self) -> None: ...

    def backup_options(self) -> Any:
        return self

    def declared(self) -> dict[str, str]:
        return {"label": "a name for the backup"}

    def parse(self, given: Options, *, restore: bool = False) -> Options:
        refuse_options(given, {} if restore else self.declared(), self.describe("e"))
        return dict(given)

    def take(self, conninfo: str, server_version: str, options: Options) -> Backup:
        raise NotImplementedError

    def restorer(self, options: Options) -> Restorer:
        return Restorer(self.host.bins, self.repo)

    def apply_expire(self, plan: ExpirePlan) -> None: ...

    def wal_to_remove(self, plan: ExpirePlan) -> list[str]:
        return []

    def sweep_unlisted(self) -> list[str]:
        return []

    def readiness(self, cluster: Any) -> list[ReadinessItem]:
        return []

    def instead(self, capability: str) -> str:
        return "the folder is filled by archive_command" if capability == "wal_stream" else ""


def test_a_new_strategy_plugs_into_the_host_and_the_managed_provider(
        tmp_path: Path, bins: PgBinaries) -> None:
    host = LocalEnvironment("e", tmp_path / "state", bins, strategy=ArchiveFolder)
    strategy = host.strategy
    assert isinstance(strategy, ArchiveFolder)
    assert host.own_settings()["archive_command"] == "cp %p /somewhere/%f"
    assert "archive_library" not in host.own_settings()
    assert host.own_settings()["wal_level"] == "replica"     # the host's own settings stay
    assert host.server_env() == {"FOLDER_TOKEN": "x"}
    host.prepare_repository()
    assert strategy.events == ["prepare"]
    p = ManagedProvider(host)
    assert (p.kind, p.describe()) == ("folder", "environment e (a WAL folder)")
    assert p.wal_stream() is None and "archive_command" in p.instead("wal_stream")
    assert p.repo is strategy.repo and p.backups() == []
    with pytest.raises(UsageError, match=r"--repo: environment e .* does not take it"):
        p.backup({"repo": 2})                    # refused before anything runs
    with pytest.raises(UsageError, match=r"--label: .* does not take it"):
        p.restored_instances().restore(None, options={"label": "x"})  # type: ignore[arg-type]


def test_the_local_host_has_the_local_strategy_by_default(tmp_path: Path,
                                                          bins: PgBinaries) -> None:
    host = LocalEnvironment("e", tmp_path / "state", bins)
    assert host.strategy.kind == "local" and host.strategy.streams_wal
    assert host.own_settings()["archive_library"] == "basic_archive"
    p = ManagedProvider(host)
    assert p.kind == "local" and p.wal_stream() is not None and p.instead("wal_stream") == ""
