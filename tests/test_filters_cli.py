"""`vggspec filters`: the picture's exact grid, repeatable bytes, and one line for each
bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vggspec import cli
from vggspec.render import GAP, TITLE_HEIGHT

SMALL = """\
name: small
input: {shape: [32, 32, 3]}
blocks: [[8, max], [16, 16, max]]
head: {type: global_avg, classes: 4}
"""


def run(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_the_picture_tiles_each_filter_and_repeats_with_the_seed(tmp_path, write, capsys):
    spec = write("small.yaml", SMALL)
    first, again = tmp_path / "a.png", tmp_path / "b.png"
    for out in (first, again):
        code, lines, err = run(capsys, "filters", str(spec), "--layer", "block2_conv1",
                               "--count", "5", "--size", "32", "--steps", "4", "--out",
                               str(out))
        assert code == 0, err
        assert lines[0].startswith(f"wrote {out}: 5 filters of block2_conv1 in ")
        assert err[-1] == ("no --weights: small has its seeded starting weights (--seed 0), so "
                           "what it shows is the mechanics, not learned features")
    assert first.read_bytes() == again.read_bytes()
    pixels = np.asarray(Image.open(first).convert("RGB")).astype(int)
    side = 128
    assert pixels.shape == (TITLE_HEIGHT + 2 * (side + GAP) + GAP, 3 * (side + GAP) + GAP, 3)
    tiles = [pixels[TITLE_HEIGHT + GAP + r * (side + GAP):TITLE_HEIGHT + GAP + r * (side + GAP)
                    + side, GAP + c * (side + GAP) + 20:GAP + c * (side + GAP) + side]
             for r, c in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]]
    assert all(tile.std() > 5 for tile in tiles)           # patterns, not flat grey
    assert len({tile.tobytes() for tile in tiles}) == 5    # each filter its own
    other = tmp_path / "c.png"
    run(capsys, "filters", str(spec), "--layer", "block2_conv1", "--count", "5", "--size",
        "32", "--steps", "4", "--out", str(other), "--seed", "1")
    assert other.read_bytes() != first.read_bytes()


def test_chosen_filters_and_vector_output(tmp_path, write, capsys):
    spec = write("small.yaml", SMALL)
    out = tmp_path / "f.svg"
    code, lines, err = run(capsys, "filters", str(spec), "--layer", "block1_conv1",
                           "--filters", "7,2", "--size", "32", "--steps", "2", "--out",
                           str(out), "--theme", "light")
    assert code == 0, err
    text = out.read_text()
    assert "small block1_conv1, filters 7,2: 2 steps of gradient ascent, seed 0 (untrained)" \
        in text
    assert ">7<" in text and ">2<" in text


@pytest.mark.parametrize("extra, message", [
    (["--layer", "block1_pool"], "--layer 'block1_pool' is not a convolution layer; the "
                                 "convolution before it is 'block1_conv1' (3 convolutions: "
                                 "'block1_conv1' to 'block2_conv2')"),
    (["--layer", "block9_conv1"], "--layer 'block9_conv1' is not a layer of small (3 "
                                  "convolutions: 'block1_conv1' to 'block2_conv2'); did you "
                                  "mean 'block2_conv1'?"),
    (["--layer", "block1_conv1", "--out", "f.jpg"],
     "f.jpg: the file name must end in .png or .svg or .pdf"),
    (["--layer", "block1_conv1", "--out", "f.png", "--format", "pdf"],
     "--format pdf and --out f.png disagree; give one of them"),
    (["--layer", "block1_conv1", "--filters", "1,1,2"],
     "filter 1 is listed more than once; each filter is drawn once"),
])
def test_bad_input_is_one_line_and_exit_2(extra, message, tmp_path, write, capsys,
                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write("small.yaml", SMALL)
    code, lines, err = run(capsys, "filters", str(spec), *extra)
    assert (code, lines, err) == (2, [], [message])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]


def test_format_names_the_default_file(tmp_path, write, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write("small.yaml", SMALL)
    code, lines, err = run(capsys, "filters", str(spec), "--layer", "block1_conv1",
                           "--size", "32", "--steps", "1", "--format", "pdf")
    assert code == 0, err
    assert lines[0].startswith("wrote small_block1_conv1.pdf: 8 filters of block1_conv1 in ")
    assert (tmp_path / "small_block1_conv1.pdf").read_bytes().startswith(b"%PDF-")


def test_a_filter_the_layer_lacks_is_one_line_before_anything_starts(tmp_path, write, capsys):
    spec = write("small.yaml", SMALL)
    code, lines, err = run(capsys, "filters", str(spec), "--layer", "block1_conv1",
                           "--filters", "3,8", "--out", str(tmp_path / "f.png"))
    assert (code, lines) == (2, [])
    assert err == ["filter index must be from 0 to 7 (block1_conv1 has 8 filters), got 8"]
    assert not (tmp_path / "f.png").exists()
