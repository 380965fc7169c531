"""`dr compare SNAPSHOT COPY --content`, the drill's way, as a process (issue 32: at least 10x
faster than reladiff at 1 GB): a fingerprint file and a DSN need no configuration, so the
process neither imports the configuration's models nor reads spectral.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spectral.errors import SpectralError, UsageError
from spectral.verify.document import SchemaEntry, Source
from spectral.verify.fingerprint import Options, document, save
from spectral.verify.targets import fingerprint_of

SRC = Path(__file__).resolve().parents[1] / "src"
NOWHERE = "host=/nonexistent/spectral-socket port=1 dbname=x connect_timeout=2"


def _no_config() -> object:
    raise AssertionError("the configuration was loaded")


def _snapshot(path: Path) -> Path:
    doc = document(datetime.now(UTC), Source("18.0", 180000, "0/1000000", "postgres"),
                   Options(("core",)), {"core": SchemaEntry.of({})}, {}, {}, {}, None,
                   SchemaEntry.of({}))
    save(doc, path)
    return path


def test_a_file_or_a_dsn_loads_no_configuration(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such fingerprint file"):
        fingerprint_of(_no_config, str(tmp_path / "missing.json"), schemas=None,  # type: ignore[arg-type]
                       content=True, workers=None)
    assert fingerprint_of(_no_config, str(_snapshot(tmp_path / "s.json")), schemas=None,  # type: ignore[arg-type]
                          content=True, workers=None)[1] == str(tmp_path / "s.json")
    with pytest.raises(SpectralError) as caught:    # tried as a DSN: no server there
        fingerprint_of(_no_config, NOWHERE, schemas=["core"], content=True, workers=1)  # type: ignore[arg-type]
    assert "nonexistent" in str(caught.value)


def test_the_compare_process_reads_no_configuration(tmp_path: Path) -> None:
    """A broken spectral.toml in the folder: the compare of a file with a DSN still gets as
    far as the DSN's server (absent here: could not connect), never to the configuration."""
    (tmp_path / "spectral.toml").write_text("this is not toml [\n")
    snap = _snapshot(tmp_path / "s.json")
    probe = ("import json, sys\nfrom spectral.cli.main import run_cli\n"
             f"code = run_cli(['--json', 'dr', 'compare', {str(snap)!r}, {NOWHERE!r}, "
             "'--content'])\n"
             "print(json.dumps([code, 'spectral.config.models' in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    code, models = json.loads(done.stdout.splitlines()[-1])
    assert "spectral.toml" not in done.stderr, done.stderr
    assert "nonexistent" in done.stderr, done.stderr
    assert code != 0 and not models


def test_a_misspelt_file_beside_a_dsn_is_named_not_asked_for_schemas(tmp_path: Path) -> None:
    """`dr compare snap.jsn DSN` (the file misspelt): neither side is a file, so both are read
    live; the misspelt one is said to be no file, environment or DSN, not a missing --schemas."""
    from spectral.config.load import embedded_default
    from spectral.verify.targets import fingerprint_pair

    cfg = embedded_default(tmp_path)
    for typo in (str(tmp_path / "snap.jsn"), "-"):
        for a, b in ((typo, NOWHERE), (NOWHERE, typo)):
            with pytest.raises(UsageError, match="neither a fingerprint file") as caught:
                fingerprint_pair(lambda: cfg, a, b, schemas=None, content=True, workers=1)
            assert repr(typo) in str(caught.value)
    with pytest.raises(UsageError, match="--schemas"):    # two DSNs: still asked for schemas
        fingerprint_pair(lambda: cfg, NOWHERE, NOWHERE + " ", schemas=None, content=True,
                         workers=1)
