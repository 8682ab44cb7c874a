"""The API imports no worker service: services are run, never imported."""

from __future__ import annotations

import ast
from pathlib import Path

import herald_api

FORBIDDEN = ("herald_publisher", "herald_scheduler", "herald_embedded")


def _imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_herald_api_imports_no_worker_service() -> None:
    # Given every module of herald_api
    root = Path(herald_api.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) > 10

    # I expect none of them to import a worker service, nor name one in a dynamic import
    offenders = []
    for path in files:
        source = path.read_text()
        for module in _imported_modules(source):
            if module.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(root)}: {module}")
        offenders += [f"{path.relative_to(root)}: mentions {n}" for n in FORBIDDEN if n in source]
    assert offenders == []


def test_the_check_would_catch_one() -> None:
    assert "herald_publisher.actors" in _imported_modules("from herald_publisher.actors import x")
    assert "herald_scheduler" in _imported_modules("import herald_scheduler")
