"""`vggspec features` end to end on a tiny spec: pictures, arrays, and every bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

import vggspec
from conftest import run_cli
from vggspec.pipeline import extract_features
from vggspec.render import GAP, ROW, TITLE_HEIGHT

TINY = ("name: tiny\ninput: {shape: [32, 32, 3]}\nblocks: [[4, max], [{filters: 9, "
        "batch_norm: true}, max]]\nhead: {type: global_avg}\n")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    hopper = folder / "hopper.jpg"
    hopper.write_bytes(cbook.get_sample_data("grace_hopper.jpg").read())
    Image.new("RGB", (40, 30), (10, 200, 30)).save(folder / "green.png")
    return folder


def test_features_writes_grids_overview_and_prints_shapes(tiny, photos, tmp_path):
    out = tmp_path / "out"
    result = run_cli("features", str(tiny), str(photos / "hopper.jpg"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "block1: (1, 16, 16, 4)", "block2: (1, 8, 8, 9)",
        f"{photos}/hopper.jpg -> {out}/hopper/"]
    assert sorted(p.name for p in (out / "hopper").iterdir()) == [
        "block1.png", "block2.png", "overview.png"]
    with Image.open(out / "hopper" / "block2.png") as grid:  # 9 channels: 3x3 tiles of 32
        assert grid.size == (320, TITLE_HEIGHT + 3 * (32 + GAP) + GAP)
        assert np.asarray(grid).std() > 10
    with Image.open(out / "hopper" / "overview.png") as overview:
        assert overview.height == 3 * (ROW + GAP) + GAP
    assert result.stderr == "tiny on tensorflow, CPU\n"


def test_folder_batches_npz_only(tiny, photos, tmp_path):
    out = tmp_path / "arrays"
    result = run_cli("features", str(tiny), str(photos), "--out", str(out), "--npz",
                     "--no-png", "--batch-size", "1")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["green", "hopper"]
    with np.load(out / "green" / "features.npz") as arrays:
        assert {k: arrays[k].shape for k in arrays} == {"block1": (16, 16, 4),
                                                        "block2": (8, 8, 9)}
    assert [p.name for p in (out / "hopper").iterdir()] == ["features.npz"]


def test_bad_images_are_listed_and_good_ones_done(tiny, photos, tmp_path):
    (photos / "empty.png").write_bytes(b"")
    (photos / "text.jpg").write_text("not an image")
    data = (photos / "hopper.jpg").read_bytes()
    (photos / "cut.jpg").write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    result = run_cli("features", str(tiny), str(photos), "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    # Pillow's count of unprocessed bytes varies with its read buffering.
    assert re.fullmatch(rf"failed: {photos}/cut.jpg: cannot read the image \(truncated or "
                        rf"corrupt\?\): image file is truncated \(\d+ bytes not processed\)",
                        lines.pop(2))
    assert lines == [
        "tiny on tensorflow, CPU",
        "5/5 images",  # progress, one line per batch when stderr is not a terminal
        f"failed: {photos}/empty.png: an empty file",
        f"failed: {photos}/text.jpg: not an image Pillow can read",
        "3 of 5 images failed"]
    assert sorted(p.name for p in out.iterdir()) == ["green", "hopper"]
    assert not list(out.rglob("*.tmp-*")) and not list(out.rglob(".*"))


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jpg", "{d}/missing.jpg: no such file"),
    (lambda d: d, "{d}: folder has no images"),
])
def test_missing_file_and_empty_folder_exit_2(tiny, tmp_path, make, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("features", str(tiny), str(make(empty)), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message.format(d=empty))
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder_exit_2(tiny, photos, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("features", str(tiny), str(photos), "--out", str(blocker / "sub"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{blocker}/sub: cannot create the folder: Not a directory"


def test_interrupt_leaves_only_whole_files_and_reports_done(tiny, photos, tmp_path):
    for index in range(4):
        Image.new("RGB", (20, 20), (index * 60, 0, 0)).save(photos / f"red{index}.png")
    calls = []

    def progress(done, total):
        calls.append(done)
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        extract_features(vggspec.spec_from_text(TINY), [photos], tmp_path / "out",
                         batch_size=2, progress=progress)
    report = caught.value.report
    assert [p.name for p, _ in report.done] == ["green.png", "hopper.jpg"]
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert written == ["green", "green/block1.png", "green/block2.png", "green/overview.png",
                       "hopper", "hopper/block1.png", "hopper/block2.png",
                       "hopper/overview.png"]


@pytest.mark.parametrize("extra, message", [
    (["--taps", "block9"], "{spec}: no layer or block named 'block9'; did you mean 'block2'?"),
    (["--weights", "{tmp}/none.h5"], "{tmp}/none.h5: no such file"),
    (["--preprocess", "torch", "--taps", "block1"], None),
])
def test_bad_options_fail_before_anything_is_written(tiny, photos, tmp_path, extra, message):
    out = tmp_path / "out"
    extra = [item.format(tmp=tmp_path) for item in extra]
    if message is None:  # torch preprocessing of a grey spec
        tiny.write_text(TINY.replace("[32, 32, 3]", "[32, 32, 1]"))
        message = "torch preprocessing needs 3 channels, the spec has 1; use --preprocess tf or none"
    result = run_cli("features", str(tiny), str(photos), "--out", str(out), *extra)
    assert result.returncode == 2
    assert result.stderr.strip() == message.format(spec=tiny, tmp=tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "0"], "argument --batch-size: must be a whole number from 1 to 4,096, "
                            "got '0'"),
    (["--cmap", "nope"], "argument --cmap: unknown colour map 'nope'; try viridis, magma, "
                         "gray"),
])
def test_bad_option_values_are_usage_errors(tiny, photos, extra, message):
    result = run_cli("features", str(tiny), str(photos), *extra)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"vggspec features: error: {message}"


def test_animated_image_warns_and_uses_the_first_frame(tiny, tmp_path):
    frames = [Image.new("RGB", (40, 40), colour) for colour in ((0, 0, 0), (255, 255, 255))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    result = run_cli("features", str(tiny), str(gif), "--out", str(tmp_path / "o"))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "tiny on tensorflow, CPU", f"warning: {gif}: animated image; using its first frame"]
    assert (tmp_path / "o" / "anim" / "overview.png").is_file()
