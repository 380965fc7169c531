from __future__ import annotations

from pathlib import Path

import pytest

from spectral.config.durations import format_duration, parse_duration
from spectral.config.load import load_config
from spectral.config.models import Posture
from spectral.config.secrets import resolve_secret
from spectral.config.starter import STARTER
from spectral.errors import ConfigError
from spectral.redact import redact


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spectral.toml"
    p.write_text(text)
    return p


def test_embedded_default_when_no_file(tmp_path: Path) -> None:
    cfg = load_config(None, cwd=tmp_path)
    name, env = cfg.environment(None)
    assert name == "local" and env.provider == "local" and env.posture is Posture.ALPHA
    assert cfg.state_dir("local") == (tmp_path / ".spectral" / "local").resolve()


def test_spectral_toml_in_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, '[environments.local]\nprovider = "local"\nposture = "pitr"\n')
    cfg = load_config(None, cwd=tmp_path)
    env = cfg.environments["local"]
    assert env.posture is Posture.PITR
    assert env.rpo_seconds == 120 and env.rto_seconds == 3600


def test_posture_defaults_follow_the_runbook_table(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'default_environment = "a"\n'
                                      '[environments.a]\nprovider="local"\nposture="alpha"\n'
                                      '[environments.p]\nprovider="local"\nposture="pro"\n'
                                      '[environments.x]\nprovider="local"\nposture="pro"\n'
                                      'rpo_target="6h"\n'))
    assert cfg.environments["a"].rpo_seconds is None          # re-seedable
    assert cfg.environments["p"].rpo_seconds == 24 * 3600     # daily snapshot
    assert cfg.environments["x"].rpo_seconds == 6 * 3600


def test_starter_file_is_valid(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, STARTER))
    assert set(cfg.environments) == {"local", "production"}
    assert cfg.environments["production"].provider == "supabase"


def test_init_lists_every_key_of_every_model(tmp_path: Path) -> None:
    """`spectral init` writes the starter and every key, generated from the models: each
    provider's and each evidence store's own keys included, and the file still loads."""
    from pydantic import BaseModel

    from spectral.config.reference import _nested
    from spectral.config.starter import starter
    from spectral.ledger.settings import STORES
    from spectral.providers.registry import BACKENDS

    text = starter()
    assert load_config(write(tmp_path, text)).environments["local"].provider == "local"
    models: list[type[BaseModel]] = [*(b.settings for b in BACKENDS), *STORES.values()]
    seen: set[type[BaseModel]] = set()
    while models:
        model = models.pop()
        seen.add(model)
        for name, info in model.model_fields.items():
            if info.exclude or name == "evidence":
                continue
            key = info.alias or name
            assert f"#   {key} (" in text or f".{key}]" in text, (model.__name__, key)
            nested = _nested(info)
            if nested is not None and nested[0] not in seen:
                models.append(nested[0])
    for name in [b.provider for b in BACKENDS] + list(STORES):
        assert f"= {name!r}" in text, name
    for tag in [b.tag for b in BACKENDS if b.tag]:     # two backends sharing a provider value
        assert tag.partition("(")[2].rstrip(")") in text, tag


@pytest.mark.parametrize(("text", "expected"), [
    ('[environments.local]\nprovider = "local"\nposture = "gold"\n',
     "environments.local.posture: Input should be 'alpha', 'pro' or 'pitr'"),
    ('[environments.local]\nprovider = "local"\nschemaz = ["core"]\n',
     "environments.local.schemaz: unknown key"),
    ('[environments.local]\nposture = "alpha"\n', "environments.local.provider: required key"),
    ('[environments.local]\nprovider = "local"\nload_bearing_tables = ["users"]\n',
     "expected schema.table names"),
    ('[environments.local]\nprovider = "local"\nrpo_target = "soon"\n',
     "expected a duration"),
    ('[environments.prod]\nprovider = "supabase"\n', "needs project_ref, access_token, dsn"),
    ('[environments.local]\nprovider = "local"\ndsn = "postgresql://u:hunter22@db/x"\n',
     "must be a secret reference"),
    ('[environments.p]\nprovider = "supabase"\nproject_ref = "x"\ndsn = "env:D"\n'
     'access_token = "sbp_0123456789abcdef"\n', "never the token itself"),
    ('default_environment = "nope"\n[environments.local]\nprovider = "local"\n',
     "default_environment 'nope' is not one of"),
    ('[environments.local]\nprovider = "barman"\n',
     "environments.local.provider: expected one of 'local', 'pgbackrest', 'supabase', 'dsn', "
     "'archive', 'barman-cloud' (got 'barman')"),
    ('[environments.local]\nprovider = "local"\nproject_ref = "x"\n',
     "environments.local.project_ref: a key of provider 'supabase', not of provider 'local'"),
    ('[environments.local]\nprovider = "local"\n[environments.local.pgbackrest]\n',
     "environments.local.pgbackrest: a key of provider 'pgbackrest', not of provider 'local'"),
    ('[environments.p]\nprovider = "pgbackrest"\ndsn = "env:D"\n', "it takes no dsn"),
    ('[environments.p]\nprovider = "pgbackrest"\n[environments.p.pgbackrest]\nstanza = "../x"\n',
     "environments.p.pgbackrest.stanza: expected letters"),
    ('[environments.d]\nprovider = "dsn"\n', "environments.d.dsn: required key is missing"),
    ('[environments.local]\nprovider = "local"\n[environments.local.evidence]\nstore = "ftp"\n',
     "environments.local.evidence.store: expected one of 'file', 'git', 's3' (got 'ftp')"),
    ('[environments.local]\nprovider = "local"\n[environments.local.evidence]\nstore = "s3"\n'
     'access_key_id = "env:K"\nsecret_access_key = "env:S"\n',
     "environments.local.evidence.bucket: required key is missing"),
    ('[environments.local]\nprovider = "local"\n[environments.local.evidence]\nbranch = "x"\n',
     "environments.local.evidence.branch: unknown key"),
])
def test_invalid_file_names_file_key_and_expectation(tmp_path: Path, text: str,
                                                       expected: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p).environment(None)     # an environment's problems: when it is used
    assert str(p) in err.value.message
    assert expected in err.value.message
    assert "hunter22" not in err.value.message and "sbp_0123" not in err.value.message


def test_each_environment_is_its_providers_settings(tmp_path: Path) -> None:
    """Existing files keep their meaning: flat Supabase keys are the Supabase model's, a local
    environment with a dsn is a bare DSN, an evidence table without a store is the file
    store."""
    from spectral.ledger.settings import FileEvidence, GitEvidence
    from spectral.providers.dsn.settings import DsnSettings
    from spectral.providers.pgbackrest.settings import PgBackRestSettings
    from spectral.providers.registry import backend
    from spectral.providers.supabase.settings import SupabaseSettings

    cfg = load_config(write(tmp_path, '[environments.sb]\nprovider = "supabase"\n'
                                      'project_ref = "abc"\ndsn = "env:D"\n'
                                      'access_token = "env:T"\n'
                                      '[environments.sb.evidence]\nsigning_key = "env:K"\n'
                                      '[environments.prod]\nprovider = "local"\n'
                                      'dsn = "env:PROD_DSN"\n'
                                      '[environments.pgb]\nprovider = "pgbackrest"\n'
                                      '[environments.pgb.evidence]\nstore = "git"\n'
                                      'remote = "env:URL"\n'))
    sb, prod, pgb = (cfg.environments[n] for n in ("sb", "prod", "pgb"))
    assert isinstance(sb, SupabaseSettings) and sb.project_ref == "abc"
    assert isinstance(sb.evidence, FileEvidence) and sb.evidence.signing_key == "env:K"
    assert isinstance(prod, DsnSettings) and backend(prod).name == "dsn"
    assert isinstance(pgb, PgBackRestSettings) and pgb.pgbackrest.stanza == "main"
    assert isinstance(pgb.evidence, GitEvidence) and pgb.evidence.remote_url == "env:URL"


BROKEN_BESIDE = ('default_environment = "db"\n'
                 '[environments.db]\nprovider = "dsn"\ndsn = "host=/nowhere"\n'
                 '[environments.sb]\nprovider = "supabase"\nproject_ref = "abc"\n'
                 'dsn = "env:D"\naccess_token = "env:T"\nposture = "gold"\nschemaz = []\n'
                 '[environments.odd]\nprovider = "barman"\n')


def test_only_the_environment_used_is_validated(tmp_path: Path) -> None:
    """A command pays for the environment it uses: the others' settings models are not built,
    and one with problems stops nobody until it is used; then every problem of it is named,
    with the file and the key."""
    p = write(tmp_path, BROKEN_BESIDE)
    cfg = load_config(p)
    name, env = cfg.environment(None)
    assert name == "db" and env.dsn == "host=/nowhere"
    assert list(cfg.environments) == ["db", "sb", "odd"] and "sb" in cfg.environments
    with pytest.raises(ConfigError) as err:
        cfg.environment("sb")
    with pytest.raises(ConfigError):
        cfg.environment("sb")                   # every use, not the first only
    assert err.value.message.startswith(f"{p}: 2 problems: environments.sb.posture: ")
    assert err.value.hint is not None and "environments.sb.schemaz: unknown key" in err.value.hint
    with pytest.raises(ConfigError, match=r"environments\.odd\.provider: expected one of"):
        cfg.environments["odd"]
    with pytest.raises(KeyError):
        cfg.environments["nope"]


def test_check_all_names_every_problem_of_every_environment(tmp_path: Path) -> None:
    """`dr status --all` (and anything else that needs them all) validates every
    environment: one error, every problem of every environment in its hint."""
    from spectral.drills.fleet import fleet_status

    p = write(tmp_path, BROKEN_BESIDE)
    with pytest.raises(ConfigError) as err:
        fleet_status(load_config(p))
    assert err.value.message.startswith(f"{p}: 3 problems: environments.sb.posture: ")
    assert err.value.hint is not None
    assert "environments.sb.provider" not in err.value.hint
    assert "environments.odd.provider: expected one of 'local'" in err.value.hint
    load_config(write(tmp_path, STARTER)).environments.check_all()


def test_each_backend_names_the_provider_values_its_settings_take() -> None:
    """The registry picks a backend without importing the others' settings: the values it
    writes beside each are its settings' Literal."""
    from typing import get_args

    from spectral.providers.registry import BACKENDS

    for b in BACKENDS:
        assert b.values == get_args(b.settings.model_fields["provider"].annotation), b.name


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "x = \n"))


def test_unknown_environment(tmp_path: Path) -> None:
    cfg = load_config(None, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*known: local"):
        cfg.environment("prod")


def test_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRAL_TEST_DSN", "postgresql://app:s3cr3t-value@db/x")
    assert resolve_secret("env:SPECTRAL_TEST_DSN").endswith("@db/x")
    # a resolved secret is masked wherever it appears afterwards
    assert "s3cr3t-value" not in redact("oops: s3cr3t-value leaked")
    (tmp_path / "tok").write_text("file-secret-123\n")
    assert resolve_secret("file:tok", base_dir=tmp_path) == "file-secret-123"
    with pytest.raises(ConfigError, match="SPECTRAL_TEST_UNSET is not set"):
        resolve_secret("env:SPECTRAL_TEST_UNSET")
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_secret("file:/nonexistent/secret")
    monkeypatch.setenv("PATH", str(tmp_path))   # no `op` on PATH
    with pytest.raises(ConfigError, match="1Password CLI `op` is not installed"):
        resolve_secret("op://vault/item/field")


@pytest.mark.parametrize(("text", "seconds"), [
    ("2m", 120), ("2 min", 120), ("24h", 86400), ("60 minutes", 3600), ("1d", 86400),
    ("90s", 90), (30, 30)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["99999999999d", "36501d", float("inf"), float("nan"), 10**20])
def test_a_duration_beyond_a_century_is_refused_not_an_overflow(text: str | float) -> None:
    """`--older-than 99999999999d` was an OverflowError (exit 3, 'internal error') when the
    drill subtracted it from now; TOML's `inf` and `nan` passed as seconds."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(None) == "-"
    assert format_duration(0.25) == "250 ms"
    assert format_duration(90) == "90.0 s"
    assert format_duration(3600) == "60.0 min"


def test_which_compare_targets_share_this_machine(tmp_path: Path) -> None:
    """Two servers here share the cores (each side of a live compare gets half); a remote one
    or a DSN behind a secret reference does not."""
    from spectral.verify.targets import _on_this_machine

    cfg = load_config(write(tmp_path, '[environments.local]\nprovider = "local"\n'
                                      '[environments.prod]\nprovider = "local"\n'
                                      'dsn = "env:PROD_DSN"\n'))
    assert _on_this_machine(cfg, "local")
    assert not _on_this_machine(cfg, "prod")
    assert _on_this_machine(cfg, "host=/tmp/sock port=5432 dbname=postgres")
    assert _on_this_machine(cfg, "postgresql://postgres@127.0.0.1:5432/postgres")
    assert not _on_this_machine(cfg, "postgresql://postgres@db.abcdefgh.supabase.co/postgres")
