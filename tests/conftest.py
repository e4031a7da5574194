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
