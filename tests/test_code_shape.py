"""Small modules and small functions (docs/design.md, /work/shared/STYLE.md): no module of
src/spectral over 400 lines, no function over 60 (from its `def` to its last line). What must
stay bigger is listed here with the reason; an exception that is no longer needed fails too, so
the list cannot outlive its reason."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "spectral"
MODULE_LINES = 400
FUNCTION_LINES = 60

# path relative to src/spectral (module), or "path:function" -> why it is bigger for now
EXCEPTIONS: dict[str, str] = {}


def oversized(root: Path) -> dict[str, int]:
    """Modules and functions (`module:function`) under `root` over the limits: their lines."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        name = str(path.relative_to(root))
        text = path.read_text()
        if (lines := len(text.splitlines())) > MODULE_LINES:
            found[name] = lines
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if (lines := node.end_lineno - node.lineno + 1) > FUNCTION_LINES:
                    found[f"{name}:{node.name}"] = lines
    return found


def test_modules_and_functions_are_small() -> None:
    found = oversized(SRC)
    over = {k: v for k, v in found.items() if k not in EXCEPTIONS}
    assert not over, (f"over {MODULE_LINES} lines a module or {FUNCTION_LINES} a function "
                      f"(lines): {over}")
    stale = sorted(set(EXCEPTIONS) - set(found))
    assert not stale, f"within the limits now, remove their exceptions: {stale}"


def test_the_checker_sees_a_long_function_and_a_long_module(tmp_path: Path) -> None:
    def function(name: str, lines: int) -> str:
        return f"def {name}() -> None:\n" + "".join(f"    x = {i}\n" for i in range(lines - 1))

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.py").write_text(function("fits", FUNCTION_LINES))
    (tmp_path / "pkg" / "long.py").write_text(
        "class C:\n" + "\n".join("    " + line for line in
                                  function("method", FUNCTION_LINES + 1).splitlines()) + "\n"
        + "\n" * (MODULE_LINES - FUNCTION_LINES - 1))
    assert oversized(tmp_path) == {"pkg/long.py:method": FUNCTION_LINES + 1,
                                   "pkg/long.py": MODULE_LINES + 1}
