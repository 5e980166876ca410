"""The teacher package: one lazy table of public names, one registry of backend names, and imports that run one way
(every backend imports `base`; none imports another backend or the package)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import embsum_hf.teacher as teacher
from embsum_hf.teacher.base import TeacherBackend

TEACHER = Path(teacher.__file__).parent


def test_importing_the_package_loads_no_torch_and_a_cheap_backend_no_transformers():
    code = (
        "import json, sys\n"
        "import embsum_hf.teacher as t\n"
        "bare = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "backend = t.get_backend('heuristic')\n"
        "print(json.dumps([bare, 'transformers' in sys.modules, type(backend).__name__]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    bare, transformers_loaded, backend = json.loads(result.stdout.strip().splitlines()[-1])
    assert bare == []
    assert not transformers_loaded and backend == "HeuristicBackend"


def test_every_public_name_resolves_and_every_registered_backend_is_a_teacher_backend():
    assert set(teacher.__all__) == {*teacher._LAZY_NAMES, "BACKENDS", "get_backend"}
    assert set(teacher.__all__) <= set(dir(teacher))
    for name in teacher.__all__:
        assert getattr(teacher, name) is not None
    for backend, class_name in teacher.BACKENDS.items():
        assert class_name in teacher.__all__, backend
        assert issubclass(getattr(teacher, class_name), TeacherBackend), backend
    assert teacher.get_backend("heuristic", top_keywords=2).top_keywords == 2
    expected = "unknown teacher backend 'llama'; expected transformers, openai, heuristic, embsum"
    with pytest.raises(ValueError, match=expected):
        teacher.get_backend("llama")
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchBackend'"):
        teacher.NoSuchBackend  # noqa: B018


def _imported_teacher_modules(path: Path) -> set[str]:
    """The `embsum_hf.teacher` modules a file imports (relative `.x` imports; `.` alone is the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.add(node.module or "__init__")
    return names


def test_imports_inside_the_package_run_one_way():
    backends = {path.stem for path in TEACHER.glob("backend_*.py")}
    assert backends == {"backend_embsum", "backend_heuristic", "backend_http", "backend_transformers"}
    for stem in backends:
        imported = _imported_teacher_modules(TEACHER / f"{stem}.py")
        assert "base" in imported, stem
        assert not imported & (backends | {"__init__"}), (stem, imported)
    for stem in ("base", "prompts", "store", "run"):
        assert not _imported_teacher_modules(TEACHER / f"{stem}.py") & (backends | {"__init__"}), stem
