"""Feature maps to pictures: one mosaic per tap, and an overview of all taps.

    {tap: HxWxC array} --render--> RGB arrays --write_png--> PNG files

Each picture is built as one numpy mosaic, coloured once through a colour map lookup
table and written once, never a plot per channel: VGG16's five blocks have 1,472
channels, and a subplot each takes notebooks tens of seconds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._files import atomic_path
from .errors import clip

TITLE_HEIGHT = 28
GAP = 2             # border between tiles: visible even around 2x2 maps zoomed to 32 px
MIN_TILE = 32
MIN_WIDTH = 320
NUMBERED_TILE = 48  # tiles at least this wide carry their channel number; smaller, a row's first
BAR_MARGIN, BAR_WIDTH, BAR_LABELS = 10, 14, 60   # the colour bar right of the mosaic
ROW = 96            # overview: height of each row's tiles
LABEL_WIDTH = 190   # overview: room for the tap name and shape
PER_ROW = 8         # overview: channels shown per tap
MAX_DRAWN = 160     # characters of one drawn text, at most
SCALES = ("channel", "layer")
FORMATS = ("png", "svg", "pdf")


@dataclass(frozen=True)
class Theme:
    """The colours around the pictures, as RGB: background, text, the border between
    tiles, and the edges of the diagram's boxes. One table for every picture."""

    background: tuple[int, int, int]
    text: tuple[int, int, int]
    border: tuple[int, int, int]
    edge: tuple[int, int, int]

    def hex(self, part: str) -> str:
        """One colour as matplotlib takes it: '#181818'."""
        return "#" + "".join(f"{channel:02x}" for channel in getattr(self, part))


THEMES = {"dark": Theme((24, 24, 24), (235, 235, 235), (0, 0, 0), (208, 208, 208)),
          "light": Theme((255, 255, 255), (20, 20, 20), (255, 255, 255), (51, 51, 51))}


def theme_of(name: str) -> Theme:
    """The Theme called ``name``; ValueError naming the choices for another."""
    if name not in THEMES:
        raise ValueError(f"unknown theme {name!r}; choose {' or '.join(THEMES)}")
    return THEMES[name]


@dataclass(frozen=True)
class Style:
    """How feature pictures look: colour map, theme, scale ("channel": each tile on its
    own range; "layer": one range) and file format (png, svg or pdf). Checked when made.

    >>> Style(theme="light", format="pdf").format
    'pdf'
    """

    cmap: str = "viridis"
    theme: str = "dark"
    scale: str = "channel"
    format: str = "png"

    def __post_init__(self):
        colormap(self.cmap)
        theme_of(self.theme)
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; choose {' or '.join(SCALES)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; choose {', '.join(FORMATS)}")


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
LEVELS = 253                  # palette entries 0..252: the colour map
TEXT_INDEX, BACKGROUND_INDEX, BORDER_INDEX = 253, 254, 255


@lru_cache(maxsize=16)
def grid_palette(name: str = "viridis", theme: str = "dark") -> np.ndarray:
    """The (256, 3) palette of grid pictures: LEVELS colours of the map, then the
    theme's text, background and border."""
    colours = theme_of(theme)
    lut = colormap(name)[np.linspace(0, 255, LEVELS).round().astype(int)]
    return np.concatenate([lut, [colours.text, colours.background, colours.border]]
                          ).astype(np.uint8)


@dataclass(frozen=True)
class Label:
    """Text placed on a picture: at (x, y) pixels, anchored as Pillow's anchors say
    ("lm": left, middle), ``size`` pixels high. Raster output draws it into the pixels,
    SVG and PDF keep it as text."""

    x: float
    y: float
    text: str
    size: int = 15
    anchor: str = "lm"
    boxed: bool = False      # on a background-coloured box (numbers on tiles)


@dataclass
class Picture:
    """A picture before it is written: pixels without text, and the text on them.
    ``pixels`` are palette indices (H, W) with ``palette`` (256, 3), or RGB (H, W, 3)."""

    pixels: np.ndarray
    labels: list[Label]
    theme: Theme
    palette: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]


def normalise_channels(fmap: np.ndarray) -> np.ndarray:
    """Scale each channel of an (H, W, C) map to 0..1 on its own; flat channels become 0."""
    fmap = np.asarray(fmap, dtype=np.float32)
    low = fmap.min(axis=(0, 1), keepdims=True)
    span = fmap.max(axis=(0, 1), keepdims=True) - low
    return np.divide(fmap - low, span, out=np.zeros_like(fmap), where=span > 0)


def normalise_layer(fmap: np.ndarray) -> np.ndarray:
    """Scale a whole (H, W, C) map to 0..1 with one range, so tiles compare."""
    fmap = np.asarray(fmap, dtype=np.float32)
    low, high = float(fmap.min()), float(fmap.max())
    if high <= low:
        return np.zeros_like(fmap)
    return (fmap - low) / (high - low)


def grid_shape(channels: int) -> tuple[int, int]:
    """(rows, columns) of the mosaic for this many channels: as square as it gets."""
    columns = math.ceil(math.sqrt(channels))
    return math.ceil(channels / columns), columns


def tile_scale(height: int, width: int) -> int:
    """Whole-number zoom that makes each tile at least MIN_TILE pixels on its long side."""
    return max(1, math.ceil(MIN_TILE / max(height, width)))


@lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def shape_text(shape) -> str:
    """A map's shape as people write it: 7x7x512 (no batch dimension)."""
    return "x".join(str(size) for size in shape)


def _number(value: float) -> str:
    return f"{value:.3g}"


def grid_picture(fmap: np.ndarray, title: str = "", max_channels: int | None = None,
                 cmap: str = "viridis", theme: str = "dark", scale: str = "channel",
                 numbers: bool = True) -> Picture:
    """The grid of one (H, W, C) feature map as a Picture (see render_grid)."""
    fmap = np.asarray(fmap)
    if fmap.ndim != 3:
        raise ValueError(f"a feature map is (height, width, channels), got shape {fmap.shape}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose {' or '.join(SCALES)}")
    if max_channels:
        fmap = fmap[..., :max_channels]
    height, width, channels = fmap.shape
    rows, columns = grid_shape(channels)
    zoom = tile_scale(height, width)
    normalise = normalise_channels if scale == "channel" else normalise_layer
    levels = (normalise(fmap) * (LEVELS - 1)).round().astype(np.uint8)
    tiles = levels.transpose(2, 0, 1)
    if zoom > 1:
        tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    tile_h, tile_w = height * zoom, width * zoom
    canvas = np.full((rows * columns, tile_h + GAP, tile_w + GAP), BORDER_INDEX, np.uint8)
    canvas[channels:] = BACKGROUND_INDEX
    canvas[:channels, :tile_h, :tile_w] = tiles
    mosaic = canvas.reshape(rows, columns, tile_h + GAP, tile_w + GAP).transpose(0, 2, 1, 3)
    mosaic = mosaic.reshape(rows * (tile_h + GAP), columns * (tile_w + GAP))
    mosaic = np.pad(mosaic, ((GAP, 0), (GAP, 0)), constant_values=BORDER_INDEX)
    body_h, body_w = mosaic.shape
    width_total = max(MIN_WIDTH, body_w + BAR_MARGIN + BAR_WIDTH + BAR_LABELS)
    picture = np.full((TITLE_HEIGHT + body_h, width_total), BACKGROUND_INDEX, np.uint8)
    picture[TITLE_HEIGHT:, :body_w] = mosaic
    # The colour bar: the map's levels from the top (high) down, the full body height.
    bar_left = body_w + BAR_MARGIN
    ramp = np.linspace(LEVELS - 1, 0, body_h - 2 * GAP).round().astype(np.uint8)
    picture[TITLE_HEIGHT + GAP:TITLE_HEIGHT + body_h - GAP,
            bar_left:bar_left + BAR_WIDTH] = ramp[:, None]
    labels = [Label(6, TITLE_HEIGHT // 2, title, 15)] if title else []
    if scale == "channel":
        high, low = "max", "min"
    else:
        high, low = _number(float(np.max(fmap))), _number(float(np.min(fmap)))
    text_x = bar_left + BAR_WIDTH + 4
    labels += [Label(text_x, TITLE_HEIGHT + GAP + 5, high, 11),
               Label(text_x, TITLE_HEIGHT + body_h - GAP - 6, low, 11)]
    if numbers:
        every = tile_w >= NUMBERED_TILE
        for channel in range(channels):
            row, column = divmod(channel, columns)
            if every or column == 0:
                labels.append(Label(GAP + column * (tile_w + GAP) + 1,
                                    TITLE_HEIGHT + GAP + row * (tile_h + GAP) + 1,
                                    str(channel), 10, "lt", boxed=True))
    return Picture(picture, labels, theme_of(theme), grid_palette(cmap, theme))


def render_grid(fmap: np.ndarray, title: str = "", max_channels: int | None = None,
                cmap: str = "viridis", theme: str = "dark", scale: str = "channel",
                numbers: bool = True) -> np.ndarray:
    """Tile every channel of one (H, W, C) feature map into one RGB picture.

    ``scale="channel"`` normalises each channel on its own (the colour bar reads min to
    max of each tile), ``"layer"`` uses one range for all (the bar shows its values).
    Tiles are zoomed by ``tile_scale``, framed by GAP-pixel borders and carry their
    channel number (every tile from NUMBERED_TILE pixels wide, else each row's first).
    A title band of TITLE_HEIGHT pixels sits on top, the colour bar on the right. For C
    channels (or the first ``max_channels``) in a (rows, columns) = ``grid_shape(C)``
    grid, the picture is ``TITLE_HEIGHT + rows * (H * zoom + GAP) + GAP`` pixels high and
    ``max(MIN_WIDTH, columns * (W * zoom + GAP) + GAP + BAR_MARGIN + BAR_WIDTH +
    BAR_LABELS)`` wide.

    >>> render_grid(np.random.rand(7, 7, 512), "block5").shape
    (881, 937, 3)
    """
    return rasterise(grid_picture(fmap, title, max_channels, cmap, theme, scale, numbers))


def write_grid(fmap: np.ndarray, path: str | os.PathLike, title: str = "",
               max_channels: int | None = None, cmap: str = "viridis", theme: str = "dark",
               scale: str = "channel", numbers: bool = True) -> Path:
    """render_grid straight to a file, atomically: a palette PNG (the fast path for many
    images), or SVG / PDF by the path's ending."""
    return write_picture(grid_picture(fmap, title, max_channels, cmap, theme, scale, numbers),
                         path)


def rasterise(picture: Picture) -> np.ndarray:
    """A Picture as an RGB array, its labels drawn in."""
    image = _pil_image(picture)
    return np.asarray(image.convert("RGB"))


def _pil_image(picture: Picture):
    from PIL import Image, ImageDraw

    palette = picture.palette is not None
    text, box = ((TEXT_INDEX, BACKGROUND_INDEX) if palette
                 else (picture.theme.text, picture.theme.background))
    pixels = picture.pixels
    boxed = [label for label in picture.labels if label.boxed]
    if boxed:
        # Numbers on tiles come by the hundred: stamp cached bitmaps with numpy, which is
        # ten times quicker than asking Pillow to lay out each one.
        pixels = pixels.copy()
        for label in boxed:
            mask = _stamp(label.text, label.size)
            x, y = int(label.x), int(label.y)
            region = pixels[y:y + mask.shape[0], x:x + mask.shape[1]]
            mask = mask[:region.shape[0], :region.shape[1]]
            region[...] = box
            region[mask] = text
    image = Image.fromarray(np.ascontiguousarray(pixels), "L" if palette else "RGB")
    draw = ImageDraw.Draw(image)
    if palette:
        draw.fontmode = "1"  # no anti-aliasing: every pixel stays a palette entry
    for label in picture.labels:
        if not label.boxed:
            draw.text((label.x, label.y), _shown(label.text), fill=text,
                      font=_font(label.size), anchor=label.anchor)
    if palette:
        image.putpalette(picture.palette.tobytes())  # an "L" picture becomes "P"
    return image


def _shown(text: str) -> str:
    """Text as drawn: control characters escaped and long text cut, since class names
    come from files that are not ours (a labels file, a model's vggspec.json)."""
    return clip(text, MAX_DRAWN)


@lru_cache(maxsize=4096)
def _stamp(text: str, size: int) -> np.ndarray:
    """A boxed label's bitmap: True where its text is, within a one-pixel margin."""
    from PIL import Image, ImageDraw

    font = _font(size)
    _, _, right, bottom = font.getbbox(text, anchor="lt")
    stamp = Image.new("1", (right + 3, bottom + 2), 0)
    ImageDraw.Draw(stamp).text((1, 1), text, fill=1, font=font, anchor="lt")
    return np.asarray(stamp, dtype=bool)


def write_picture(picture: Picture, path: str | os.PathLike) -> Path:
    """Write a Picture, atomically, as PNG, SVG or PDF by the path's ending (another
    ending is written as PNG). In SVG and PDF the pixels are one embedded image and the
    labels stay text: searchable, selectable and sharp at any zoom."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("svg", "pdf"):
        return _save(_pil_image(picture), path)
    figure = vector_figure(picture)
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}), \
            atomic_path(path) as temporary:
        figure.savefig(temporary, format=kind, facecolor=figure.get_facecolor())
    return path


def vector_figure(picture: Picture):
    """A Picture as a matplotlib Figure, one pixel a point at 72 dpi: the pixels as one
    image, the labels as text at the same places and sizes."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    width, height = picture.size
    pixels = picture.pixels if picture.palette is None else picture.palette[picture.pixels]
    background = tuple(c / 255 for c in picture.theme.background)
    figure = Figure(figsize=(width / 72, height / 72), dpi=72, facecolor=background)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(pixels, interpolation="nearest", extent=(0, width, height, 0))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.axis("off")
    colour = tuple(c / 255 for c in picture.theme.text)
    horizontal = {"l": "left", "m": "center", "r": "right"}
    vertical = {"t": "top", "m": "center", "b": "bottom", "s": "baseline"}
    for label in picture.labels:
        if label.boxed:
            # Pillow's default font is about 0.6 of its size wide a character.
            axes.add_patch(Rectangle((label.x, label.y), 0.62 * label.size * len(label.text)
                                     + 2, label.size + 2, facecolor=background,
                                     edgecolor="none"))
        # parse_math off: a '$' in a class name is text, not TeX.
        axes.text(label.x + label.boxed, label.y + label.boxed, _shown(label.text),
                  fontsize=label.size * 0.8, color=colour, parse_math=False,
                  ha=horizontal[label.anchor[0]], va=vertical[label.anchor[1]])
    return figure


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


def overview_picture(image: np.ndarray, features: dict[str, np.ndarray],
                     per_row: int = PER_ROW, cmap: str = "viridis", theme: str = "dark"
                     ) -> Picture:
    """The overview as a Picture (see render_overview)."""
    from PIL import Image

    colours = theme_of(theme)
    width = LABEL_WIDTH + per_row * (ROW + GAP) + GAP
    rows = 1 + len(features)
    canvas = np.empty((rows * (ROW + GAP) + GAP, width, 3), np.uint8)
    canvas[:] = colours.background
    labels: list[Label] = []

    def label(row: int, name: str, detail: str) -> None:
        middle = GAP + row * (ROW + GAP) + ROW // 2
        labels.extend([Label(8, middle - 9, name, 15), Label(8, middle + 10, detail, 12)])

    shown = _picture_of_input(image, ROW)[:, :width - LABEL_WIDTH - GAP]
    canvas[GAP:GAP + ROW, LABEL_WIDTH:LABEL_WIDTH + shown.shape[1]] = shown
    label(0, "input", shape_text(np.shape(image)))
    for row, (tap, fmap) in enumerate(features.items(), start=1):
        fmap = np.asarray(fmap)
        label(row, tap, shape_text(fmap.shape))
        count = min(per_row, fmap.shape[2])
        tiles = _colour(normalise_channels(fmap[..., :count]), cmap)
        top = GAP + row * (ROW + GAP)
        for index in range(count):
            tile = Image.fromarray(np.ascontiguousarray(tiles[:, :, index]))
            left = LABEL_WIDTH + index * (ROW + GAP)
            canvas[top:top + ROW, left:left + ROW] = tile.resize(
                (ROW, ROW), Image.Resampling.NEAREST)
    return Picture(canvas, labels, colours)


def render_overview(image: np.ndarray, features: dict[str, np.ndarray],
                    per_row: int = PER_ROW, cmap: str = "viridis", theme: str = "dark"
                    ) -> np.ndarray:
    """One picture of an input image and, below it, a row per tap: its name and shape
    (7x7x512), then its first ``per_row`` channels, each ROW pixels high.

    ``image`` is (H, W, C) in 0..255; ``features`` maps tap names to (H, W, C) maps for
    that image. The picture is ``(1 + len(features)) * (ROW + GAP) + GAP`` pixels high.
    """
    return rasterise(overview_picture(image, features, per_row, cmap, theme))


def tiles_picture(tiles: np.ndarray, numbers: list[int], title: str = "",
                  theme: str = "dark", side: int = 128) -> Picture:
    """RGB (or grey) tiles (N, H, W, C), 0..255, in a square-ish grid with borders, each
    numbered (a filter picture's filter numbers), scaled to ``side`` pixels, title on top.
    """
    from PIL import Image

    colours = theme_of(theme)
    tiles = np.asarray(tiles)
    count = len(tiles)
    rows, columns = grid_shape(count)
    width = max(MIN_WIDTH, columns * (side + GAP) + GAP)
    canvas = np.empty((TITLE_HEIGHT + rows * (side + GAP) + GAP, width, 3), np.uint8)
    canvas[:] = colours.background
    canvas[TITLE_HEIGHT:TITLE_HEIGHT + rows * (side + GAP) + GAP,
           :columns * (side + GAP) + GAP] = colours.border
    labels = [Label(6, TITLE_HEIGHT // 2, title, 15)] if title else []
    for index, (tile, number) in enumerate(zip(tiles, numbers)):
        row, column = divmod(index, columns)
        top, left = TITLE_HEIGHT + GAP + row * (side + GAP), GAP + column * (side + GAP)
        shown = Image.fromarray(_picture_of_input(tile, tile.shape[0])).resize(
            (side, side), Image.Resampling.NEAREST if tile.shape[0] < side else
            Image.Resampling.BILINEAR)
        canvas[top:top + side, left:left + side] = np.asarray(shown)
        labels.append(Label(left + 1, top + 1, str(number), 10, "lt", boxed=True))
    # Unfilled places of the last row show the background, not a border.
    for index in range(count, rows * columns):
        row, column = divmod(index, columns)
        top, left = TITLE_HEIGHT + GAP + row * (side + GAP), GAP + column * (side + GAP)
        canvas[top:top + side + GAP, left:left + side + GAP] = colours.background
    return Picture(canvas, labels, colours)


CAM_SIDE = 320      # Grad-CAM pictures: each panel's long side, in pixels


def cam_picture(image: np.ndarray, heat: np.ndarray, title: str = "", theme: str = "dark",
                cmap: str = "jet", alpha: float = 0.5) -> Picture:
    """An image beside the same image with its class activation map laid over it, a
    colour bar (0 to the map's maximum) on the right and ``title`` on top.

    ``image`` is (H, W, C) in 0..255, as the model saw it; ``heat`` is the map at any
    resolution (a conv layer's), scaled bilinearly to the image. Each panel's long side
    is CAM_SIDE pixels; the map is blended in with ``alpha``.
    """
    from PIL import Image

    from .attribution import upsample

    colours = theme_of(theme)
    height, width = np.shape(image)[:2]
    factor = CAM_SIDE / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    shown = np.asarray(Image.fromarray(_picture_of_input(image, height)).resize(
        size, Image.Resampling.BILINEAR), dtype=np.float32)
    heat = upsample(heat, size[1], size[0])
    blended = (1 - alpha) * shown + alpha * colormap(cmap)[(heat * 255).astype(np.uint8)]
    body_w = 2 * size[0] + 3 * GAP
    total_w = max(MIN_WIDTH, body_w + BAR_MARGIN + BAR_WIDTH + BAR_LABELS)
    canvas = np.empty((TITLE_HEIGHT + size[1] + 2 * GAP, total_w, 3), np.uint8)
    canvas[:] = colours.background
    rows = slice(TITLE_HEIGHT + GAP, TITLE_HEIGHT + GAP + size[1])
    canvas[rows, GAP:GAP + size[0]] = shown.round().astype(np.uint8)
    canvas[rows, 2 * GAP + size[0]:2 * GAP + 2 * size[0]] = \
        blended.round().clip(0, 255).astype(np.uint8)
    bar_left = body_w + BAR_MARGIN
    ramp = colormap(cmap)[np.linspace(255, 0, size[1]).round().astype(int)]
    canvas[rows, bar_left:bar_left + BAR_WIDTH] = ramp[:, None]
    text_x = bar_left + BAR_WIDTH + 4
    labels = [Label(text_x, TITLE_HEIGHT + GAP + 5, "max", 11),
              Label(text_x, TITLE_HEIGHT + GAP + size[1] - 6, "0", 11)]
    if title:
        labels.append(Label(6, TITLE_HEIGHT // 2, title, 15))
    return Picture(canvas, labels, colours)


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
