"""Shared paths and helpers for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHS = sorted((ROOT / "archs").glob("*.yaml"))
INVALID = ROOT / "tests" / "invalid"

# Quiet TensorFlow's start-up chatter in subprocesses and here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m vggspec` as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", "vggspec", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter from the repository root."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def write(tmp_path):
    """Write a text file under tmp_path and return its path."""
    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return _write


def raw_schema_problems(text: str) -> list[str]:
    """What a plain JSON Schema client (check-jsonschema, an editor) says of a spec file's
    own text, before vggspec merges its extends: jsonschema on the raw document."""
    import yaml

    from vggspec.schema import validator

    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator().iter_errors(yaml.safe_load(text))]


@pytest.fixture(autouse=True)
def every_valid_spec_passes_the_raw_schema(monkeypatch):
    """Every spec a test finds valid must also pass the raw schema check an editor or CI
    runs on the file as written (issue: extends used to make valid specs fail it)."""
    import vggspec.spec

    planner = sys.modules["vggspec.plan"]  # the attribute vggspec.plan is the function
    original = vggspec.spec.check_spec

    def checked(path=None, *, text=None, file="<text>", base_dir="."):
        result = original(path, text=text, file=file, base_dir=base_dir)
        if result[0] is not None and not result[1]:
            raw = Path(path).read_text(encoding="utf-8") if text is None else text
            assert raw_schema_problems(raw) == [], f"{path or file} fails the raw schema"
        return result

    monkeypatch.setattr(vggspec.spec, "check_spec", checked)
    monkeypatch.setattr(planner, "check_spec", checked)
