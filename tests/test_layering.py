"""The direction of dependencies: measuring code never imports ``reports``; ``reports`` reads results JSON.

``reports`` may use the results envelope (``audit.results``), atomic writes, the error types and the
escaping of file names, nothing that measures. The two orchestrators (the CLI and the demo) may use both sides.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATORS = {"audit/cli.py", "audit/demo.py", "audit/parsers.py"}
REPORTS_MAY_USE = {"audit.errors", "audit.atomic", "audit.results", "audit.io.names"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_measuring_code_never_imports_reports() -> None:
    offenders = {
        f"{p.relative_to(ROOT).as_posix()} imports {name}"
        for package in ("audit", "detectors")
        for p in _modules(package)
        if p.relative_to(ROOT).as_posix() not in ORCHESTRATORS
        for name in _imports(p)
        if name == "reports" or name.startswith("reports.")
    }
    assert offenders == set()


def test_reports_only_reads_results() -> None:
    offenders = {
        f"{p.relative_to(ROOT).as_posix()} imports {name}"
        for p in _modules("reports")
        for name in _imports(p)
        if (name.split(".")[0] in ("audit", "detectors")) and name not in REPORTS_MAY_USE
    }
    assert offenders == set()
