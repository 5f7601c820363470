"""The layering of docs/architecture.md, checked on every import in ``atif/`` (lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "atif"

# Layer of a module, by the longest matching prefix of its dotted name.
LAYERS: dict[str, str] = {
    "atif.errors": "base",
    "atif.progress": "base",
    "atif.trial": "base",
    "atif._yaml": "base",
    "atif.schema": "base",
    "atif.adapters": "adapters",
    "atif.store": "store",
    "atif.judge": "judge",
    "atif.report": "report",
    "atif.serve": "serve",
    "atif.api": "api",
    "atif.cli": "cli",
}

# Which of our modules a layer may import. "store-api" is the package `atif.store` itself
# (its __init__), never its submodules, and likewise "judge-api" and "report-api";
# "top" is the package `atif` (the public API).
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "adapters": {"base", "adapters"},
    "store": {"base", "store", "store-api"},
    "judge": {"base", "judge", "judge-api", "store-api"},
    "report": {"base", "report", "report-api", "store-api"},
    "serve": {"base", "serve", "store-api", "report-api", "judge-api"},
    "api": {"base", "adapters", "store", "store-api", "judge", "judge-api", "report", "report-api", "serve", "api", "top"},
    "cli": {"top", "cli"},
}

# Third-party packages only one layer (or one module) may import.
EXCLUSIVE: dict[str, tuple[str, ...]] = {
    "duckdb": ("atif.store",),
    "rich": ("atif.cli",),
    "litellm": ("atif.judge.client",),
    "jinja2": ("atif.report", "atif.serve"),
    "starlette": ("atif.serve",),
    "uvicorn": ("atif.serve",),
    "zstandard": ("atif.store", "atif.adapters"),
    "pyarrow": ("atif.store",),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer a module belongs to."""
    if module == "atif":
        return "top"
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return LAYERS[best] if best else None


def target_layer(module: str) -> str | None:
    """The layer an import reaches: as :func:`layer_of`, but a package itself is that layer's public API."""
    apis = {"atif.store": "store-api", "atif.judge": "judge-api", "atif.report": "report-api"}
    return apis.get(module) or layer_of(module)


def _is_module(dotted: str) -> bool:
    path = ROOT.parent / Path(*dotted.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def _bound_in_package(package: str, name: str) -> bool:
    """Whether a package's ``__init__`` binds ``name`` itself (a re-exported function shadows a submodule)."""
    init = ROOT.parent / Path(*package.split(".")) / "__init__.py"
    if not init.exists():
        return False
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every import in ``source``, relative ones resolved.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module of ours.
    """
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
                target = ".".join(parts + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{target}.{a.name}"
                is_sub = target.startswith("atif") and _is_module(sub) and not _bound_in_package(target, a.name)
                out.append((node.lineno, sub if is_sub else target))
    return list(dict.fromkeys(out))


def violations(path: Path, source: str | None = None) -> list[str]:
    module = module_name(path)
    layer = layer_of(module)
    if layer in (None, "top"):
        return []
    text = path.read_text(encoding="utf-8") if source is None else source
    found = []
    for line, target in imports_of(text, module, path.name == "__init__.py"):
        where = f"{path.relative_to(ROOT.parent)}:{line} imports {target}"
        if target == "atif" or target.startswith("atif."):
            reached = target_layer(target)
            if reached not in ALLOWED[layer] and reached != layer:
                found.append(f"{where} ({layer} may import {', '.join(sorted(ALLOWED[layer]))})")
            continue
        top = target.split(".")[0]
        owners = EXCLUSIVE.get(top)
        if owners and not any(module == o or module.startswith(o + ".") for o in owners):
            found.append(f"{where} (only {', '.join(owners)} may import {top})")
    return found


def all_modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def test_every_import_follows_the_layering() -> None:
    problems = [v for path in all_modules() for v in violations(path)]
    assert problems == [], "\n".join(problems)


# Each door the layering closes, as a line that would open it again: the check must catch it.
DOORS = [
    ("store/ingest.py", "from atif.adapters.convert import iter_convert"),
    ("store/store.py", "import atif.judge.engine"),
    ("cli/report.py", "from atif.report import build_report"),
    ("cli/judge.py", "from atif.judge.engine import render_messages"),
    ("cli/validate.py", "from atif.schema.validate import validate"),
    ("cli/store.py", "from atif.store import Store"),
    ("cli/convert.py", "from atif.errors import AtifError"),
    ("report/aggregate.py", "import duckdb"),
    ("report/aggregate.py", "from atif.store.codec import decode_raw"),
    ("report/html.py", "from atif.judge import engine"),
    ("judge/engine.py", "from rich.progress import Progress"),
    ("judge/engine.py", "from atif.store.store import Store"),
    ("judge/engine.py", "import duckdb"),
    ("judge/context.py", "import litellm"),
    ("adapters/convert.py", "from rich.console import Console"),
    ("adapters/harbor.py", "from atif.store import Store"),
    ("schema/validate.py", "from atif.adapters import registry"),
    ("trial.py", "from atif.store import Store"),
    ("store/flatten.py", "from ..judge import criteria"),
    ("serve/app.py", "import duckdb"),
    ("serve/app.py", "from atif.store.ratings import PRECEDENCE"),
    ("serve/app.py", "from atif.adapters import convert"),
    ("report/summary.py", "from starlette.responses import HTMLResponse"),
]


@pytest.mark.parametrize(("file", "line"), DOORS)
def test_the_check_catches_each_door(file: str, line: str) -> None:
    path = ROOT / file
    assert violations(path, line + "\n"), f"{file}: `{line}` was not flagged"


def test_allowed_imports_are_not_flagged() -> None:
    ok = [
        ("cli/report.py", "from atif import build_report"),
        ("judge/engine.py", "from atif.store import Store"),
        ("report/summary.py", "from atif.store import Store"),
        ("store/ingest.py", "from atif.schema.identity import canonical_json"),
        ("adapters/harbor.py", "from atif.trial import Trial"),
        ("judge/client.py", "import litellm"),
        ("cli/_progress.py", "from rich.console import Console"),
    ]
    for file, line in ok:
        assert violations(ROOT / file, line + "\n") == [], line
