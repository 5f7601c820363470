"""What each everyday command imports: the heavy modules it must not load (start-up cost).

Each command runs in a fresh interpreter, as a user runs it, and reports ``sys.modules`` at
exit. No timing here (speed is measured by ``bench/startup_bench.py``): these pin the imports
that the start-up figures depend on, so that a new top-level import fails a test instead of
quietly slowing every command down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "store"))
from store_builders import basic_trials, subprocess_env, write_run  # noqa: E402

# Reports which modules were loaded when the command ended (however it ended).
_PROBE = """\
import atexit, json, sys
def _report():
    mods = sorted(sys.modules)
    sys.__stderr__.write("\\nMODULES " + json.dumps(mods) + "\\n")
atexit.register(_report)
sys.argv = ["atif", *sys.argv[1:]]
from atif.cli import main
main()
"""

CRITERIA = """\
name: startup
judge:
  model: openai/gpt-4o-mini
  api_base: http://127.0.0.1:9/v1
criteria:
  - label: task-complete
    question: Did the agent complete the requested task?
"""


def loaded(*args: str, cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    env = subprocess_env()
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.pop("ATIF_DB", None)
    p = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=300, check=False)
    line = next((x for x in p.stderr.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, p.stderr
    return set(json.loads(line[len("MODULES "):])), p


def present(mods: set[str], *names: str) -> list[str]:
    """Which of ``names`` (a package or any of its submodules) were loaded."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in mods)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with three trials, each rated on the one criterion (nothing left to judge)."""
    root = tmp_path_factory.mktemp("startup")
    trials = basic_trials(3)
    for i, t in enumerate(trials):
        t["criterion_ratings"] = [{"criterion": "task-complete", "rating": "YES" if i % 2 else "NO"}]
    write_run(root / "run", trials)
    (root / "criteria.yaml").write_text(CRITERIA)
    _, p = loaded("upload", str(root / "run"), "-e", "exp", "--criteria", str(root / "criteria.yaml"),
                  "--workers", "1", "--db", str(root / "s.duckdb"), cwd=root)
    assert p.returncode == 0, p.stderr
    return root


def test_help_imports_no_library_part(tmp_path: Path) -> None:
    mods, p = loaded("--help", cwd=tmp_path)
    assert p.returncode == 0 and "query" in p.stdout
    assert present(mods, "litellm", "duckdb", "pydantic", "pydantic_core", "rich", "jinja2", "atif.schema",
                   "atif.store", "atif.judge", "atif.report", "atif.adapters") == []


def test_query_imports_no_schema_judge_or_report(store: Path) -> None:
    mods, p = loaded("query", "select 1 as one", "--format", "csv", "--db", str(store / "s.duckdb"), cwd=store)
    assert p.returncode == 0 and p.stdout == "one\n1\n", p.stderr
    assert "duckdb" in mods  # the probe sees what the command loaded
    assert present(mods, "pydantic", "pydantic_core", "litellm", "jinja2", "pyarrow", "numpy", "rich",
                   "atif.schema", "atif.trial", "atif.judge", "atif.report", "atif.adapters", "atif.store.ingest") == []


def test_query_table_output_loads_rich_only_to_draw(store: Path) -> None:
    mods, p = loaded("query", "select 1 as one", "--db", str(store / "s.duckdb"), cwd=store)
    assert p.returncode == 0 and "one" in p.stdout
    assert "rich.table" in mods
    assert present(mods, "pydantic", "litellm", "atif.schema") == []


def test_validate_of_a_valid_file_builds_no_pydantic_model(store: Path) -> None:
    files = sorted((store / "run").rglob("*.json"))
    mods, p = loaded("validate", str(files[0]), cwd=store)
    assert p.returncode == 0 and "valid (ATIF-v" in p.stdout, p.stdout + p.stderr
    assert "pydantic_core" in mods  # the stored core schema is what checked the shape
    assert present(mods, "pydantic", "atif.schema.models", "atif.schema.shape", "importlib.metadata", "duckdb",
                   "litellm", "rich", "atif.store", "atif.trial") == []


def test_validate_of_an_invalid_file_still_reports_every_shape_issue(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "ATIF-v1.6", "session_id": 3, "agent": {"name": "a"}, "steps": []}')
    mods, p = loaded("validate", str(bad), cwd=tmp_path)
    assert p.returncode == 1
    assert "/session_id" in p.stdout and "/agent/version" in p.stdout, p.stdout
    assert "atif.schema.shape" in mods  # the full check is built from the models when needed
    assert present(mods, "duckdb", "litellm") == []


def test_schema_and_repair_load_the_models_where_used(tmp_path: Path) -> None:
    mods, p = loaded("schema", "--version", "v1.5", cwd=tmp_path)
    assert p.returncode == 0 and '"ATIF-v1.5"' in p.stdout
    assert "atif.schema.models" in mods


def test_report_imports_no_jinja2_pydantic_or_judge(store: Path) -> None:
    mods, p = loaded("report", "-e", "exp", "--format", "json", "--db", str(store / "s.duckdb"), cwd=store)
    assert p.returncode == 0 and json.loads(p.stdout)["experiment"] == "exp", p.stderr
    assert present(mods, "jinja2", "pydantic", "litellm", "pyarrow", "numpy", "atif.judge", "atif.trial",
                   "atif.schema.models", "atif.adapters") == []


def test_report_html_loads_jinja2(store: Path) -> None:
    mods, p = loaded("report", "-e", "exp", "--format", "html", "-o", str(store / "r.html"),
                     "--db", str(store / "s.duckdb"), cwd=store)
    assert p.returncode == 0, p.stderr
    assert "jinja2" in mods and (store / "r.html").read_text().startswith("<!")


def test_upload_of_stored_trials_imports_no_pyarrow_models_or_judge(store: Path) -> None:
    mods, p = loaded("upload", str(store / "run"), "-e", "exp", "--workers", "1", "--db", str(store / "s.duckdb"),
                     cwd=store)
    assert p.returncode == 0 and "unchanged trials     3" in p.stdout, p.stdout + p.stderr
    assert present(mods, "pyarrow", "numpy", "litellm", "jinja2", "atif.schema.models", "atif.judge",
                   "atif.report") == []


def test_evaluate_with_nothing_pending_imports_no_litellm(store: Path) -> None:
    mods, p = loaded("evaluate", "-e", "exp", "--db", str(store / "s.duckdb"), cwd=store)
    assert p.returncode == 0, p.stdout + p.stderr
    assert present(mods, "litellm", "jinja2", "pyarrow", "atif.report", "atif.adapters") == []


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_bytes(b"\x00not json")
    p = subprocess.run([sys.executable, "-m", "atif.cli", "validate", str(bad)], capture_output=True, text=True,
                       env=subprocess_env(), check=False, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr + p.stdout
    assert f"{bad}: INVALID" in p.stdout and "[json.syntax]" in p.stdout
