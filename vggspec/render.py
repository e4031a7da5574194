"""Feature maps to pictures: one mosaic per tap, and an overview of all taps.

    {tap: HxWxC array} --render--> RGB arrays --write_png--> PNG files

Each picture is built as one numpy mosaic, coloured once through a colour map lookup
table and written once, never a plot per channel: VGG16's five blocks have 1,472
channels, and a subplot each takes notebooks tens of seconds.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._files import atomic_path

TITLE_HEIGHT = 28
GAP = 1
MIN_TILE = 32
MIN_WIDTH = 320
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
ROW = 96            # overview: height of each row's tiles
LABEL_WIDTH = 190   # overview: room for the tap name and shape
PER_ROW = 8         # overview: channels shown per tap


@lru_cache(maxsize=8)
def colormap(name: str = "viridis") -> np.ndarray:
    """A matplotlib colour map as a (256, 3) uint8 lookup table."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colour map {name!r}; try viridis, magma, gray") from None
    return (cmap(np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def normalise_channels(fmap: np.ndarray) -> np.ndarray:
    """Scale each channel of an (H, W, C) map to 0..1 on its own; flat channels become 0."""
    fmap = np.asarray(fmap, dtype=np.float32)
    low = fmap.min(axis=(0, 1), keepdims=True)
    span = fmap.max(axis=(0, 1), keepdims=True) - low
    return np.divide(fmap - low, span, out=np.zeros_like(fmap), where=span > 0)


def grid_shape(channels: int) -> tuple[int, int]:
    """(rows, columns) of the mosaic for this many channels: as square as it gets."""
    columns = math.ceil(math.sqrt(channels))
    return math.ceil(channels / columns), columns


def tile_scale(height: int, width: int) -> int:
    """Whole-number zoom that makes each tile at least MIN_TILE pixels on its long side."""
    return max(1, math.ceil(MIN_TILE / max(height, width)))


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _colour(values: np.ndarray, cmap: str) -> np.ndarray:
    """values in 0..1 (negative marks background) -> RGB uint8."""
    rgb = colormap(cmap)[(np.clip(values, 0, 1) * 255).astype(np.uint8)]
    rgb[values < 0] = BACKGROUND
    return rgb


def render_grid(fmap: np.ndarray, title: str = "", max_channels: int | None = None,
                cmap: str = "viridis") -> np.ndarray:
    """Tile every channel of one (H, W, C) feature map into one RGB picture.

    Each channel is normalised on its own and coloured with ``cmap``; tiles are zoomed
    by ``tile_scale`` and separated by GAP pixels; a title band of TITLE_HEIGHT pixels
    sits on top. For C channels (or the first ``max_channels``) in a (rows, columns) =
    ``grid_shape(C)`` grid, the picture is
    ``TITLE_HEIGHT + rows * (H * zoom + GAP) + GAP`` pixels high and
    ``max(MIN_WIDTH, columns * (W * zoom + GAP) + GAP)`` wide.

    >>> render_grid(np.random.rand(7, 7, 512), "block5").shape
    (858, 829, 3)
    """
    fmap = np.asarray(fmap)
    if fmap.ndim != 3:
        raise ValueError(f"a feature map is (height, width, channels), got shape {fmap.shape}")
    if max_channels:
        fmap = fmap[..., :max_channels]
    height, width, channels = fmap.shape
    rows, columns = grid_shape(channels)
    zoom = tile_scale(height, width)
    tiles = normalise_channels(fmap).transpose(2, 0, 1)
    if zoom > 1:
        tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    tile_h, tile_w = height * zoom, width * zoom
    canvas = np.full((rows * columns, tile_h + GAP, tile_w + GAP), -1.0, dtype=np.float32)
    canvas[:channels, :tile_h, :tile_w] = tiles
    mosaic = canvas.reshape(rows, columns, tile_h + GAP, tile_w + GAP).transpose(0, 2, 1, 3)
    mosaic = mosaic.reshape(rows * (tile_h + GAP), columns * (tile_w + GAP))
    mosaic = np.pad(mosaic, ((GAP, 0), (GAP, 0)), constant_values=-1.0)
    if mosaic.shape[1] < MIN_WIDTH:
        mosaic = np.pad(mosaic, ((0, 0), (0, MIN_WIDTH - mosaic.shape[1])), constant_values=-1.0)
    picture = _colour(mosaic, cmap)
    return np.concatenate([_title_band(title, picture.shape[1]), picture], axis=0)


def _title_band(title: str, width: int, height: int = TITLE_HEIGHT) -> np.ndarray:
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (width, height), BACKGROUND)
    ImageDraw.Draw(band).text((6, height // 2), title, fill=TEXT, font=_font(15), anchor="lm")
    return np.asarray(band)


def _picture_of_input(image: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    image = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
    if image.shape[2] in (1, 2):
        image = np.repeat(image[..., :1], 3, axis=2)
    picture = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    width = max(1, round(picture.width * height / picture.height))
    return np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR))


def render_overview(image: np.ndarray, features: dict[str, np.ndarray],
                    per_row: int = PER_ROW, cmap: str = "viridis") -> np.ndarray:
    """One picture of an input image and, below it, a row per tap: its name and shape,
    then its first ``per_row`` channels, each ROW pixels high.

    ``image`` is (H, W, C) in 0..255; ``features`` maps tap names to (H, W, C) maps for
    that image. The picture is ``(1 + len(features)) * (ROW + GAP) + GAP`` pixels high.
    """
    from PIL import Image, ImageDraw

    width = LABEL_WIDTH + per_row * (ROW + GAP) + GAP
    rows = 1 + len(features)
    canvas = Image.new("RGB", (width, rows * (ROW + GAP) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    label_font, small_font = _font(15), _font(12)

    def label(row: int, name: str, detail: str) -> None:
        middle = GAP + row * (ROW + GAP) + ROW // 2
        draw.text((8, middle - 9), name, fill=TEXT, font=label_font, anchor="lm")
        draw.text((8, middle + 10), detail, fill=TEXT, font=small_font, anchor="lm")

    shown = _picture_of_input(image, ROW)[:, :width - LABEL_WIDTH - GAP]
    canvas.paste(Image.fromarray(np.ascontiguousarray(shown)), (LABEL_WIDTH, GAP))
    label(0, "input", "x".join(str(s) for s in np.shape(image)))
    for row, (tap, fmap) in enumerate(features.items(), start=1):
        fmap = np.asarray(fmap)
        label(row, tap, str((1, *fmap.shape)))
        count = min(per_row, fmap.shape[2])
        tiles = _colour(normalise_channels(fmap[..., :count]), cmap)
        for index in range(count):
            tile = Image.fromarray(np.ascontiguousarray(tiles[:, :, index]))
            tile = tile.resize((ROW, ROW), Image.Resampling.NEAREST)
            canvas.paste(tile, (LABEL_WIDTH + index * (ROW + GAP), GAP + row * (ROW + GAP)))
    return np.asarray(canvas)


def write_png(picture: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB array as a PNG, atomically (no partial file on error or Ctrl-C).
    Fast zlib settings: these pictures are looked at, not archived."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as temporary:
        Image.fromarray(picture).save(temporary, format="PNG", compress_level=1)
    return path
