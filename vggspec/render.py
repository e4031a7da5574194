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


# Grids are palette pictures: one byte a pixel, a third of what RGB costs to compress.
LEVELS = 254                  # palette entries 0..253: the colour map
TEXT_INDEX, BACKGROUND_INDEX = 254, 255


@lru_cache(maxsize=8)
def grid_palette(name: str = "viridis") -> np.ndarray:
    """The (256, 3) palette of grid pictures: LEVELS colours of the map, text, background."""
    lut = colormap(name)[np.linspace(0, 255, LEVELS).round().astype(int)]
    return np.concatenate([lut, [TEXT, BACKGROUND]]).astype(np.uint8)


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


def grid_indices(fmap: np.ndarray, title: str = "", max_channels: int | None = None
                 ) -> np.ndarray:
    """The grid picture as palette indices (see render_grid for its layout)."""
    fmap = np.asarray(fmap)
    if fmap.ndim != 3:
        raise ValueError(f"a feature map is (height, width, channels), got shape {fmap.shape}")
    if max_channels:
        fmap = fmap[..., :max_channels]
    height, width, channels = fmap.shape
    rows, columns = grid_shape(channels)
    zoom = tile_scale(height, width)
    levels = (normalise_channels(fmap) * (LEVELS - 1)).round().astype(np.uint8)
    tiles = levels.transpose(2, 0, 1)
    if zoom > 1:
        tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    tile_h, tile_w = height * zoom, width * zoom
    canvas = np.full((rows * columns, tile_h + GAP, tile_w + GAP), BACKGROUND_INDEX, np.uint8)
    canvas[:channels, :tile_h, :tile_w] = tiles
    mosaic = canvas.reshape(rows, columns, tile_h + GAP, tile_w + GAP).transpose(0, 2, 1, 3)
    mosaic = mosaic.reshape(rows * (tile_h + GAP), columns * (tile_w + GAP))
    mosaic = np.pad(mosaic, ((GAP, 0), (GAP, max(0, MIN_WIDTH - mosaic.shape[1] - GAP))),
                    constant_values=BACKGROUND_INDEX)
    return np.concatenate([_title_band(title, mosaic.shape[1]), mosaic], axis=0)


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
    (857, 829, 3)
    """
    return grid_palette(cmap)[grid_indices(fmap, title, max_channels)]


def write_grid(fmap: np.ndarray, path: str | os.PathLike, title: str = "",
               max_channels: int | None = None, cmap: str = "viridis") -> Path:
    """render_grid straight to a palette PNG, atomically: the fast path for many images."""
    from PIL import Image

    picture = Image.fromarray(grid_indices(fmap, title, max_channels))
    picture.putpalette(grid_palette(cmap).tobytes())  # an "L" picture becomes "P"
    return _save(picture, path)


def _title_band(title: str, width: int, height: int = TITLE_HEIGHT) -> np.ndarray:
    from PIL import Image, ImageDraw

    band = Image.new("L", (width, height), BACKGROUND_INDEX)
    draw = ImageDraw.Draw(band)
    draw.fontmode = "1"  # no anti-aliasing: every pixel stays a palette entry
    draw.text((6, height // 2), title, fill=TEXT_INDEX, font=_font(15), anchor="lm")
    return np.asarray(band)


def _colour(values: np.ndarray, cmap: str) -> np.ndarray:
    """values in 0..1 -> RGB uint8 through the colour map."""
    return colormap(cmap)[(np.clip(values, 0, 1) * 255).astype(np.uint8)]


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
    """Write an RGB array as a PNG, atomically (no partial file on error or Ctrl-C)."""
    from PIL import Image

    return _save(Image.fromarray(picture), path)


def _save(picture, path: str | os.PathLike) -> Path:
    # Fast zlib settings: these pictures are looked at, not archived.
    path = Path(path)
    with atomic_path(path) as temporary:
        picture.save(temporary, format="PNG", compress_level=1)
    return path
