"""Feature grids fit for a paper: exact sizes, the colour bar's ramp, borders between
tiles, channel numbers, themes, SVG and PDF that keep their text, and seeded pictures."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec import cli
from vggspec.render import (BAR_LABELS, BAR_MARGIN, BAR_WIDTH, BORDER_INDEX, GAP, LEVELS,
                            MIN_WIDTH, NUMBERED_TILE, ROW, TEXT_INDEX, THEMES, TITLE_HEIGHT,
                            Style, grid_palette, grid_picture, grid_shape, overview_picture,
                            render_grid, render_overview, tile_scale, write_grid,
                            write_picture)

BAR = BAR_MARGIN + BAR_WIDTH + BAR_LABELS


def grid_size(shape) -> tuple[int, int]:
    rows, columns = grid_shape(shape[2])
    zoom = tile_scale(shape[0], shape[1])
    return (max(MIN_WIDTH, columns * (shape[1] * zoom + GAP) + GAP + BAR),
            TITLE_HEIGHT + rows * (shape[0] * zoom + GAP) + GAP)


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
        assert image.size == grid_size(shape)
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    body = pixels[TITLE_HEIGHT:]
    assert body.std() > 20                   # the maps vary
    assert len(np.unique(body.reshape(-1, 3), axis=0)) > 100
    assert (pixels[:TITLE_HEIGHT] != 24).any(axis=2).sum() > 150  # the title was drawn


def test_max_channels_limits_the_grid():
    picture = render_grid(np.ones((10, 10, 100)), "t", max_channels=9)
    assert picture.shape[0] == TITLE_HEIGHT + 3 * (40 + GAP) + GAP


def levels_of(colours: np.ndarray, palette: np.ndarray) -> list[int]:
    """Each RGB colour's nearest entry among the palette's colour-map levels."""
    lut = palette[:LEVELS].astype(int)
    return [int(np.abs(lut - colour).sum(axis=1).argmin()) for colour in colours.astype(int)]


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_the_colour_bar_is_a_monotone_ramp_of_the_colour_map(theme):
    shape = (7, 7, 20)
    picture = render_grid(np.random.default_rng(2).random(shape), "t", theme=theme)
    width, height = grid_size(shape)
    assert picture.shape == (height, width, 3)
    body_w = grid_shape(20)[1] * (7 * 5 + GAP) + GAP
    column = picture[TITLE_HEIGHT + GAP:height - GAP, body_w + BAR_MARGIN + BAR_WIDTH // 2]
    levels = levels_of(column, grid_palette("viridis", theme))
    assert levels[0] == LEVELS - 1 and levels[-1] == 0
    assert all(a >= b for a, b in zip(levels, levels[1:]))
    assert len(set(levels)) > 100
    # The same in every column of the bar, and the colours are exactly the palette's.
    bar = picture[TITLE_HEIGHT + GAP:height - GAP, body_w + BAR_MARGIN:body_w + BAR_MARGIN
                  + BAR_WIDTH]
    assert (bar == bar[:, :1]).all()


@pytest.mark.parametrize("side", [2, 7])
def test_borders_between_tiles_are_visible_even_for_tiny_maps(side):
    fmap = np.random.default_rng(3).random((side, side, 9))
    zoom = tile_scale(side, side)
    tile = side * zoom
    picture = grid_picture(fmap, "t", numbers=False).pixels[TITLE_HEIGHT:]
    for k in range(4):  # every border line of the 3x3 mosaic, both directions
        line = slice(k * (tile + GAP), k * (tile + GAP) + GAP)
        assert (picture[line, :3 * (tile + GAP) + GAP] == BORDER_INDEX).all()
        assert (picture[:3 * (tile + GAP) + GAP, line] == BORDER_INDEX).all()
    inside = picture[GAP:GAP + tile, GAP:GAP + tile]
    assert (inside < LEVELS).all()  # tiles are map colours only, right up to the border
    for theme in THEMES.values():
        assert theme.border != (68, 1, 84) and theme.border != (253, 231, 37)


def test_channel_numbers_on_every_big_tile_and_each_rows_first_small_one(tmp_path):
    def numbered(shape) -> list[int]:
        rows, columns = grid_shape(shape[2])
        zoom = tile_scale(shape[0], shape[1])
        tile_h, tile_w = shape[0] * zoom, shape[1] * zoom
        # Flat maps: only the numbers put text on the tiles. The PNG holds palette indices.
        pixels = np.asarray(Image.open(write_grid(np.zeros(shape), tmp_path / "n.png")))
        found = []
        for channel in range(shape[2]):
            row, column = divmod(channel, columns)
            top = TITLE_HEIGHT + GAP + row * (tile_h + GAP)
            left = GAP + column * (tile_w + GAP)
            if (pixels[top:top + 14, left:left + 24] == TEXT_INDEX).sum() > 5:
                found.append(channel)
        return found

    assert 28 * tile_scale(28, 28) >= NUMBERED_TILE > 7 * tile_scale(7, 7)
    assert numbered((28, 28, 10)) == list(range(10))
    assert numbered((7, 7, 30)) == [0, 6, 12, 18, 24]
    labels = [label.text for label in grid_picture(np.zeros((7, 7, 30))).labels]
    assert labels == ["max", "min", "0", "6", "12", "18", "24"]
    assert [label.text for label in grid_picture(np.zeros((7, 7, 30)), numbers=False).labels] \
        == ["max", "min"]


def test_layer_scale_shares_one_range_and_labels_the_bar_with_values():
    fmap = np.zeros((4, 4, 2), np.float32)
    fmap[..., 0] = 1.0
    fmap[..., 1] = np.linspace(0, 0.5, 16).reshape(4, 4)
    channel = grid_picture(fmap, scale="channel", numbers=False)
    layer = grid_picture(fmap, scale="layer", numbers=False)
    assert [label.text for label in layer.labels] == ["1", "0"]
    zoom = tile_scale(4, 4)
    second = slice(2 * GAP + 4 * zoom, 2 * GAP + 8 * zoom)
    rows = slice(TITLE_HEIGHT + GAP, TITLE_HEIGHT + GAP + 4 * zoom)
    assert channel.pixels[rows, second].max() == LEVELS - 1   # its own range: to the top
    assert layer.pixels[rows, second].max() == round(0.5 * (LEVELS - 1))  # half the range
    with pytest.raises(ValueError, match="unknown scale 'log'; choose channel or layer"):
        grid_picture(fmap, scale="log")


def test_light_theme_colours():
    picture = render_grid(np.random.default_rng(4).random((7, 7, 4)), "block5  7x7x4",
                          theme="light")
    assert tuple(picture[1, -1]) == THEMES["light"].background == (255, 255, 255)
    title = picture[:TITLE_HEIGHT].reshape(-1, 3)
    assert (title == THEMES["light"].text).all(axis=1).sum() > 50
    with pytest.raises(ValueError, match="unknown theme 'blue'; choose dark or light"):
        render_grid(np.zeros((2, 2, 1)), theme="blue")
    with pytest.raises(ValueError, match="unknown format 'jpg'; choose png, svg, pdf"):
        Style(format="jpg")


def test_svg_and_pdf_keep_their_text_as_text(tmp_path):
    fmap = np.random.default_rng(5).random((7, 7, 12))
    svg = write_grid(fmap, tmp_path / "g.svg", "block5  7x7x12", theme="light")
    texts = [element.text for element in ElementTree.parse(svg).iter()
             if element.tag.endswith("text")]
    assert texts[:3] == ["block5  7x7x12", "max", "min"]
    assert texts[3:] == ["0", "4", "8"]
    root = ElementTree.parse(svg).getroot()
    width, height = grid_size((7, 7, 12))
    assert (root.get("width"), root.get("height")) == (f"{width}pt", f"{height}pt")
    pdf = write_grid(fmap, tmp_path / "g.pdf", "block5  7x7x12").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/FontFile2" in pdf          # TrueType text embedded: text, not outlines
    image = np.random.default_rng(6).uniform(0, 255, (32, 32, 3))
    overview = overview_picture(image, {"block1": fmap, "block2": fmap[::2, ::2]})
    texts = [element.text for element in ElementTree.parse(write_picture(
        overview, tmp_path / "o.svg")).iter() if element.tag.endswith("text")]
    assert texts == ["input", "32x32x3", "block1", "7x7x12", "block2", "4x4x12"]


def test_overview_has_one_row_per_tap_and_shapes_without_the_batch():
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
    assert [label.text for label in overview_picture(image, features).labels][1::2] == [
        "32x48x3", "16x16x4", "8x8x12", "4x4x3"]


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
    picture = render_grid(fmap, "edge", numbers=False).astype(np.float32)
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


SMALL = "name: small\ninput: {shape: [16, 16, 3]}\nblocks: [[4, max], [8, max]]\n" \
        "head: {type: none}\n"


def test_features_cli_writes_pdf_and_svg_with_titles_without_the_batch(tmp_path, write,
                                                                     capsys):
    spec = write("small.yaml", SMALL)
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (20, 20, 3), np.uint8)
                    ).save(image)
    code = cli.main(["features", str(spec), str(image), "--out", str(tmp_path / "f"),
                     "--format", "svg", "--theme", "light"])
    assert code == 0, capsys.readouterr().err
    files = sorted(p.name for p in (tmp_path / "f" / "photo").iterdir())
    assert files == ["block1.svg", "block2.svg", "overview.svg"]
    texts = [element.text for element in ElementTree.parse(
        tmp_path / "f" / "photo" / "block2.svg").iter() if element.tag.endswith("text")]
    assert texts[0] == "block2  4x4x8"


def test_seed_makes_untrained_pictures_repeat(tmp_path, write, capsys):
    spec = write("small.yaml", SMALL)
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(8).integers(0, 255, (16, 16, 3), np.uint8)
                    ).save(image)

    def maps(seed: str, name: str) -> np.ndarray:
        out = tmp_path / name
        code = cli.main(["features", str(spec), str(image), "--out", str(out), "--npz",
                         "--no-png", "--seed", seed])
        assert code == 0, capsys.readouterr().err
        return np.load(out / "photo" / "features.npz")["block2"]

    first, other, again = maps("5", "a"), maps("6", "c"), maps("5", "b")
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_text_from_files_is_drawn_escaped_and_never_as_tex(tmp_path):
    """A class name comes from a labels file or a model's vggspec.json: '$' must not
    start matplotlib's TeX, control characters must not reach the SVG or the screen."""
    from vggspec.render import Label, Picture

    name = "$x^$ \x1b[7mowned\nline"
    picture = Picture(np.zeros((40, 200, 3), np.uint8), [Label(4, 20, name, 12)],
                      THEMES["dark"])
    svg = write_picture(picture, tmp_path / "t.svg")
    texts = [element.text for element in ElementTree.parse(svg).iter()
             if element.tag.endswith("text")]
    assert texts == ["$x^$ \\x1b[7mowned\\nline"]
    assert write_picture(picture, tmp_path / "t.pdf").read_bytes().startswith(b"%PDF-")
    long = Picture(np.zeros((40, 200, 3), np.uint8), [Label(4, 20, "n" * 500, 12)],
                   THEMES["dark"])
    texts = [element.text for element in ElementTree.parse(write_picture(
        long, tmp_path / "l.svg")).iter() if element.tag.endswith("text")]
    assert texts == ["n" * 157 + "..."]
