"""Pictures: exact sizes, real content, the overview's rows and the diagram's labels."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

import vggspec
from conftest import ROOT, run_cli, run_python
from vggspec.diagram import diagram_boxes, write_diagram
from vggspec.render import (GAP, LEVELS, MIN_WIDTH, ROW, TITLE_HEIGHT, grid_palette,
                            grid_shape, render_grid, render_overview, tile_scale, write_grid)


@pytest.mark.parametrize("shape, rows, columns, zoom", [
    ((112, 112, 64), 8, 8, 1), ((56, 56, 128), 11, 12, 1), ((28, 28, 256), 16, 16, 2),
    ((14, 14, 512), 23, 23, 3), ((7, 7, 512), 23, 23, 5)])
def test_grid_size_follows_channels_and_tile_size(shape, rows, columns, zoom, tmp_path):
    fmap = np.random.default_rng(0).normal(size=shape).astype("float32")
    assert grid_shape(shape[2]) == (rows, columns)
    assert tile_scale(shape[0], shape[1]) == zoom
    path = write_grid(fmap, tmp_path / "g.png", f"block {shape}")
    with Image.open(path) as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")),
                                      render_grid(fmap, f"block {shape}"))
        assert image.size == (max(MIN_WIDTH, columns * (shape[1] * zoom + GAP) + GAP),
                              TITLE_HEIGHT + rows * (shape[0] * zoom + GAP) + GAP)
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    body = pixels[TITLE_HEIGHT:]
    assert body.std() > 20                   # the maps vary
    assert len(np.unique(body.reshape(-1, 3), axis=0)) > 100
    assert (pixels[:TITLE_HEIGHT] != 24).any(axis=2).sum() > 150  # the title was drawn


def test_max_channels_limits_the_grid():
    picture = render_grid(np.ones((10, 10, 100)), "t", max_channels=9)
    assert picture.shape[0] == TITLE_HEIGHT + 3 * (40 + GAP) + GAP


def test_vertical_edge_through_a_hand_set_conv_lights_up_the_edge():
    from vggspec.builder import feature_model

    spec = vggspec.spec_from_text(
        "name: edge\ninput: {shape: [16, 16, 1]}\n"
        "blocks: [{convs: [2], padding: valid, activation: linear, pool: none}]\n"
        "head: {type: none}\ntaps: [block1_conv1]\n")
    features = feature_model(spec)
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    kernel = np.stack([sobel_x, np.zeros((3, 3), np.float32)], axis=-1)[:, :, None, :]
    features.get_layer("block1_conv1").set_weights([kernel, np.zeros(2, np.float32)])
    image = np.zeros((1, 16, 16, 1), np.float32)
    image[..., 8:, :] = 255.0  # dark left half, bright right half
    fmap = features(image)["block1_conv1"].numpy()[0]
    picture = render_grid(fmap, "edge").astype(np.float32)
    zoom = tile_scale(14, 14)
    tile = picture[TITLE_HEIGHT + GAP:TITLE_HEIGHT + GAP + 14 * zoom, GAP:GAP + 14 * zoom]
    brightest = tile.sum(axis=2).mean(axis=0)
    assert set(np.flatnonzero(brightest == brightest.max()) // zoom) == {6, 7}
    top = grid_palette()[LEVELS - 1]
    assert np.all(tile[:, 6 * zoom:8 * zoom] == top)       # the edge columns: top colour
    assert np.all(tile[:, :5 * zoom] == grid_palette()[0])  # flat sides: bottom colour
    second = picture[TITLE_HEIGHT + GAP:TITLE_HEIGHT + GAP + 14 * zoom,
                     2 * GAP + 14 * zoom:2 * GAP + 28 * zoom]
    assert np.all(second == grid_palette()[0])             # a zero filter: one flat colour


def test_overview_has_one_row_per_tap(tmp_path):
    rng = np.random.default_rng(1)
    features = {"block1": rng.random((16, 16, 4)), "block2": rng.random((8, 8, 12)),
                "block3_conv1": rng.random((4, 4, 3))}
    image = rng.uniform(0, 255, (32, 48, 3))
    picture = render_overview(image, features)
    assert picture.shape[0] == (1 + 3) * (ROW + GAP) + GAP
    rows = [picture[GAP + r * (ROW + GAP):(r + 1) * (ROW + GAP), 200:] for r in range(4)]
    assert all(row.std() > 10 for row in rows)
    # block3_conv1 has 3 channels: the rest of its row is background
    assert np.all(rows[3][:, 190 + 3 * (ROW + GAP):] == 24)


def test_diagram_labels_use_the_papers_notation():
    boxes = diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg16.yaml"))
    assert [b.label for b in boxes] == (
        ["input 224×224×3"] + ["conv3-64"] * 2 + ["maxpool"] + ["conv3-128"] * 2 + ["maxpool"]
        + ["conv3-256"] * 3 + ["maxpool"] + ["conv3-512"] * 3 + ["maxpool"]
        + ["conv3-512"] * 3 + ["maxpool", "FC-4096", "FC-4096", "FC-1000", "soft-max"])
    assert [b.caption for b in boxes if b.caption] == [
        "112×112×64", "56×56×128", "28×28×256", "14×14×512", "7×7×512", "1000"]


def test_diagram_shows_variants():
    c = [b.label for b in diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg16_c.yaml"))]
    assert c.count("conv1-256") == 1 and c.count("conv1-512") == 2
    bn = [b.label for b in diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg11_bn.yaml"))]
    assert bn.count("BN") == 8
    lrn = [b.label for b in diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg11_lrn.yaml"))]
    assert lrn[:3] == ["input 224×224×3", "conv3-64", "LRN"]
    pooled = vggspec.spec_from_text("extends: vgg16\nhead: {type: global_avg}\n")
    assert [b.label for b in diagram_boxes(vggspec.plan(pooled))][-1] == "global avgpool"


def test_diagram_png_and_svg(tmp_path):
    layout = vggspec.plan(ROOT / "archs" / "vgg16.yaml")
    png = write_diagram(layout, tmp_path / "d.png")
    with Image.open(png) as image:
        assert image.width > 2 * image.height
        assert np.asarray(image.convert("L")).std() > 20
    svg = write_diagram(layout, tmp_path / "d.svg").read_text()
    assert svg.count(">conv3-512<") == 6 and ">soft-max<" in svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "d.svg"]


def test_diagram_cli_without_tensorflow(tmp_path):
    code = ("import sys, vggspec.cli as c\n"
            f"rc = c.main(['diagram', 'archs/vgg19.yaml', '--out', r'{tmp_path}/v.svg'])\n"
            "print(rc, any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))")
    result = run_python(code)
    assert result.stdout.splitlines()[-1] == "0 False"
    assert (tmp_path / "v.svg").read_text().count(">conv3-512<") == 8
    bad = run_cli("diagram", "archs/vgg19.yaml", "--out", str(tmp_path / "v.jpg"))
    assert (bad.returncode, bad.stderr.strip()) == (
        2, f"{tmp_path}/v.jpg: the file name must end in .png or .svg")
