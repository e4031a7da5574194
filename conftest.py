"""What the docstring examples in vggspec/ may assume: run from a folder holding the
repository's archs/, schema/ and tests/invalid/, plus a photos/ folder and extra.jpg
(real photos), with np, keras, vggspec and its main functions imported."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _doctest_folder(request, doctest_namespace, tmp_path):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import numpy as np
    from matplotlib.cbook import get_sample_data

    import vggspec

    for name in ("archs", "schema", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    photo = Path(get_sample_data("grace_hopper.jpg", asfileobj=False))
    (tmp_path / "photos").mkdir()
    for name in ("a.jpg", "b.png"):
        shutil.copy(photo, tmp_path / "photos" / name)
    (tmp_path / "photos" / "notes.txt").write_text("not an image\n")
    shutil.copy(photo, tmp_path / "extra.jpg")
    doctest_namespace.update(np=np, vggspec=vggspec, get_sample_data=get_sample_data,
                             plan=vggspec.plan, build_model=vggspec.build_model,
                             feature_model=vggspec.feature_model)
    if "layers" in request.node.name or "keras" in (request.node.dtest.docstring or ""):
        import keras

        doctest_namespace["keras"] = keras
    before = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield
    finally:
        os.chdir(before)
