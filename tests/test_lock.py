"""The committed pipeline state matches the code: every stage's dvc.yaml deps cover every pad/ module it
imports, and dvc.lock's code and params hashes match the tree (no training: `dvc status`)."""
import ast
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def pad_imports(script: Path) -> set[Path]:
    """Every file of the `pad` package that `script` imports, directly or through other pad modules,
    function-level (lazy) imports included: a static walk of the import statements."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] != "pad":
                    continue
                for i in range(1, len(parts) + 1):  # a package's __init__ runs before its modules
                    base = REPO.joinpath(*parts[:i])
                    for f in (base / "__init__.py", base.with_suffix(".py")):
                        if f.is_file() and f not in seen:
                            seen.add(f)
                            todo.append(f)
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_dvc_deps_cover_every_pad_module_a_stage_imports(stage):
    deps = [REPO / d for d in STAGES[stage]["deps"] if not d.startswith("$")]
    script = REPO / "stages" / f"{stage}.py"
    assert script in deps
    missing = sorted(str(f.relative_to(REPO)) for f in pad_imports(script)
                     if not any(f == d or d in f.parents for d in deps))
    assert not missing, f"dvc.yaml stage {stage!r} imports these but does not list them as deps: {missing}"


def test_dvc_lock_matches_the_code_and_params():
    """On a fresh clone only data and models are absent ('deleted', 'not in cache'); any 'modified' code,
    params or committed metrics/plots means dvc.lock is stale: rerun `dvc repro` and commit it."""
    dvc = shutil.which("dvc")
    assert dvc, "dvc is not installed"
    done = subprocess.run([dvc, "status", "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stale = []
    for stage, changes in json.loads(done.stdout or "{}").items():
        for change in changes:
            if not isinstance(change, dict):  # e.g. "changed command", "always changed"
                stale.append(f"{stage}: {change}")
                continue
            for kind, entries in change.items():
                for path, state in entries.items():
                    if state != "deleted" and state != "not in cache":
                        stale.append(f"{stage}: {kind} {path}: {state}")
    assert not stale, "dvc.lock does not match the tree (run `dvc repro` and commit dvc.lock, metrics, plots):\n" + \
        "\n".join(stale)
