"""Issue 28 items 2 and 4: every environment has a provider (a bare DSN's has only a source),
its database is the provider's source, and the registry is the one list of backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spectral.config.load import load_config
from spectral.environment import open_environment
from spectral.errors import ConnectError, UsageError
from spectral.pg.conn import connect


def _config(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "spectral.toml"
    path.write_text(text)
    return load_config(path)


def test_a_bare_dsn_is_a_provider_with_only_a_source(tmp_path: Path, make_cluster: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`provider = "local"` with a dsn (as files have always said it) and `provider = "dsn"`:
    the database opens through the provider; what needs backups is refused in one line."""
    cluster = make_cluster()
    monkeypatch.setenv("SPECTRAL_TEST_BARE_DSN", cluster.conninfo())
    cfg = _config(tmp_path, '[environments.old]\nprovider = "local"\n'
                            'dsn = "env:SPECTRAL_TEST_BARE_DSN"\n'
                            '[environments.new]\nprovider = "dsn"\n'
                            'dsn = "env:SPECTRAL_TEST_BARE_DSN"\n')
    for name in ("old", "new"):
        environment = open_environment(cfg, name)
        provider = environment.provider
        assert provider.kind == "dsn" and not provider.capabilities
        assert provider.wal_archive() is None
        with environment.database() as dsn, connect(dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        with pytest.raises(UsageError, match=rf"environment '{name}' names a database \(dsn\) "
                                             r"but no backups spectral can reach"):
            provider.backups()


def test_an_unreachable_database_is_a_one_line_connect_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[environments.gone]\nprovider = "dsn"\n'
                            'dsn = "host=127.0.0.1 port=9 dbname=x connect_timeout=1"\n')
    environment = open_environment(cfg, "gone")
    with pytest.raises(ConnectError, match=r"cannot connect to database x at 127\.0\.0\.1:9"), \
            environment.database():
        pass


def test_a_supabase_database_opens_without_the_api_token(tmp_path: Path,
                                                         make_cluster: Any) -> None:
    """Reading the database needs the DSN only: the Management API token is resolved on the
    first API call (a cron `posture sample` has no token to give)."""
    cluster = make_cluster()
    cfg = _config(tmp_path, f'[environments.sb]\nprovider = "supabase"\nproject_ref = "abc"\n'
                            f'access_token = "env:SPECTRAL_TEST_NO_SUCH_TOKEN"\n'
                            f'dsn = "{cluster.conninfo()}"\n')
    environment = open_environment(cfg, "sb")
    with environment.database() as dsn:
        assert dsn == cluster.conninfo()
    with pytest.raises(Exception, match="SPECTRAL_TEST_NO_SUCH_TOKEN is not set"):
        environment.provider.backups()


def test_local_commands_refuse_an_environment_spectral_does_not_run(tmp_path: Path) -> None:
    from spectral.providers.registry import open_server

    cfg = _config(tmp_path, '[environments.e]\nprovider = "dsn"\ndsn = "host=/nowhere"\n')
    with pytest.raises(UsageError, match="'e' is not a local environment run by spectral"):
        open_server(open_environment(cfg, "e"))


def test_the_registry_is_the_one_place_that_names_a_backend() -> None:
    """Above providers/, no module imports a backend's package or compares a provider's name;
    the old branches (ProviderKind, managed_cluster, open_target) are gone everywhere."""
    import re

    from spectral.providers.registry import BACKENDS

    src = Path(__file__).parent.parent / "src" / "spectral"
    packages = {b.settings.__module__.split(".")[2] for b in BACKENDS}
    names = "|".join(b.name for b in BACKENDS)
    imports = re.compile(r"spectral\.providers\.(" + "|".join(packages) + r")\b")
    branches = re.compile(r"\.(provider|kind) *(==|!=|is|in) *\(?[\"'](" + names + r")[\"']")
    for path in src.rglob("*.py"):
        rel = path.relative_to(src)
        text = path.read_text()
        assert not re.search(r"ProviderKind|managed_cluster|open_target", text), rel
        if rel.parts[0] != "providers":
            assert not imports.search(text), f"{rel} imports a backend's package"
            assert not branches.search(text), f"{rel} branches on a provider's name"
