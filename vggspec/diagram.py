"""The architecture picture, from the plan alone (no TensorFlow).

    Spec --plan--> layers --diagram--> PNG, SVG or PDF

Each layer is a box in perspective: its height follows the feature map's spatial size,
its thickness the square root of the channel count, as in the classic VGG16 figure;
labels use the paper's notation (conv3-64, maxpool, FC-4096, soft-max), with each block's
output shape below. Batch norm is folded into the conv it follows, so a bn network has the
same boxes as its plain twin.

The figure is sized for print: always FIGURE_WIDTH inches wide, with text of at least
FONT_SIZE points, so it is legible in a 7-inch column at 1:1. Long networks get smaller
boxes, then wrap onto more rows, rather than smaller text.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ._files import atomic_path, check_output_file
from .kinds import activation_label, kind_of
from .plan import Plan
from .render import FORMATS, theme_of  # one theme table and format list for every picture

COLOURS = {
    "conv": "#9ecae1", "conv_bn": "#6baed6", "bn": "#fdd0a2", "lrn": "#fdae6b",
    "pool": "#e6550d", "fc": "#74c476", "softmax": "#9e9ac8", "global": "#fd8d3c",
    "input": "#d9d9d9",
}
LEGEND = {"input": "input", "conv": "convolution + activation",
          "conv_bn": "convolution + batch norm + activation", "bn": "batch norm",
          "lrn": "local response norm", "pool": "pooling", "global": "global pooling",
          "fc": "fully connected + activation", "softmax": "soft-max"}
NOMINAL_SIZE = 224  # drawn size of an open (None) input dimension

# Print sizes. A figure FIGURE_WIDTH inches wide, placed in a 7-inch column, shows its
# text at FONT_SIZE * 7 / FIGURE_WIDTH points, which must stay at least 7.
FIGURE_WIDTH = 7.0  # inches
FONT_SIZE = 7.5  # points: labels, captions and legend
TITLE_SIZE = 9.5  # points
DPI = 200  # PNG pixels per inch: 1400 pixels across
MARGIN = 0.12  # inches of empty border
# Inches per box unit (Box.height, Box.thickness): the input box is 3.2 units tall, so
# 1.3 inches at most (VGG11 fills the width at 1.2); below SMALLEST_SCALE the boxes are
# too flat to read, and the network wraps onto another row instead (VGG19 with batch
# norm, the longest in archs/, still fits one row at 0.79 inches).
LARGEST_SCALE = 1.3 / 3.2
SMALLEST_SCALE = 0.7 / 3.2
LABEL_PAD = 0.04  # inches between a box's top face and its label
ROW_GAP = 0.2  # inches between wrapped rows


@dataclass(frozen=True)
class Box:
    """One drawn layer: its label in the paper's notation and its drawn proportions.

    ``kind`` is a key of COLOURS and LEGEND; ``height`` and ``thickness`` are in box
    units (the input box is 3.2 tall), scaled to inches when drawn.
    """

    label: str
    kind: str
    height: float
    thickness: float
    block: int | None
    caption: str = ""




def _size(value, reference: int) -> float:
    value = NOMINAL_SIZE if value is None else value
    return max(0.35, 3.2 * math.sqrt(value / reference))


def _thickness(channels: int) -> float:
    # Square root, as for the height: doubling the filters draws each box 1.41x as thick,
    # while 512 channels stay within a quarter of the input's height. The floor keeps a
    # 3-channel input visible.
    return max(0.1, 0.035 * math.sqrt(max(channels, 1)))


def _shape_text(shape) -> str:
    return "×".join("?" if s is None else str(s) for s in shape)


def diagram_boxes(p: Plan) -> list[Box]:
    """The boxes to draw, in order, with paper-notation labels (no drawing, no files).

    A batch norm right after a conv is no box of its own: the conv's box becomes kind
    "conv_bn". Local response norm stays a thin slab of its own.

    >>> [box.label for box in diagram_boxes(plan("archs/vgg11_bn.yaml"))][:3]
    ['input 224×224×3', 'conv3-64', 'maxpool']
    """
    first = p.layers[0].output_shape
    reference = max(s for s in first[:2] if s is not None) if any(first[:2]) else NOMINAL_SIZE
    boxes = [Box(kind_of("InputLayer").label(p.layers[0].config), "input",
                 _size(first[0], reference), _thickness(first[2]), None)]
    for layer in p.layers[1:]:
        kind = kind_of(layer.kind)
        shape, config, style = layer.output_shape, layer.config, kind.style
        if style is None:  # activations draw as part of their conv; flatten, dropout not at all
            continue
        if style == "bn" and boxes[-1].kind == "conv":
            # Batch norm does not change the shape; a slab per conv would double the
            # boxes of a bn network and crowd out the convs it belongs to.
            boxes[-1] = replace(boxes[-1], kind="conv_bn")
        elif style == "global":
            boxes.append(Box(kind.label(config), style, 0.9, _thickness(shape[0]), None,
                             _shape_text(shape)))
        elif style == "fc":
            boxes.append(Box(kind.label(config), style, 1.1 + 0.25 * math.log2(
                max(config["units"], 2) / 2) / 4, 0.16, None))
            if layer.name == "predictions" and config["activation"] != "linear":
                boxes.append(Box(activation_label(config["activation"]), "softmax",
                                 boxes[-1].height, 0.16, None, _shape_text(shape)))
        else:
            # Normalisation layers are thin slabs, so the convs stay the eye's anchor.
            thickness = 0.1 if style in ("bn", "lrn") else _thickness(shape[2])
            boxes.append(Box(kind.label(config), style, _size(shape[0], reference),
                             thickness, layer.block,
                             "" if layer.block else _shape_text(shape)))
    # Caption each block's last box with the block's output shape.
    last_of_block = {}
    for index, box in enumerate(boxes):
        if box.block is not None:
            last_of_block[box.block] = index
    for block, index in last_of_block.items():
        shape = [layer for layer in p.layers if layer.block == block][-1].output_shape
        boxes[index] = replace(boxes[index], caption=_shape_text(shape))
    return boxes


# --- layout, in inches ---------------------------------------------------------------


def _text_size(text: str, size: float) -> tuple[float, float]:
    """(width, height) of one line of text in inches, measured without a renderer."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    width, height, _ = text_to_path.get_text_width_height_descent(
        text, FontProperties(size=size), ismath=False)
    return width / 72, height / 72


# A rotated label is a vertical strip one line of text wide; neighbouring strips must not
# touch, which sets the narrowest pitch between boxes.
LINE = 1.2 * FONT_SIZE / 72
LABEL_PITCH = LINE + 0.03
CAPTION_GAP = 0.15  # inches between neighbouring captions
LEGEND_GAP = 0.1  # inches between the last captions and the legend
LEGEND_LINE = 1.4 * LINE
SWATCH = (0.16, 0.1)  # inches: a legend entry's colour patch
SWATCH_GAP, ENTRY_GAP = 0.05, 0.18  # inches: patch to its words, entry to the next


@dataclass
class _Placed:
    """A box at a scale: ``left`` is its front face's left edge, in inches from the row's
    start (mutable: placing a row moves boxes right until labels and captions clear)."""

    box: Box
    left: float
    scale: float
    label_length: float
    caption_width: float

    @property
    def thickness(self) -> float:
        return self.box.thickness * self.scale

    @property
    def height(self) -> float:
        return self.box.height * self.scale

    @property
    def depth(self) -> tuple[float, float]:
        """How far the perspective faces reach right and up."""
        depth = self.height * 0.45
        return depth * 0.55, depth * 0.35

    @property
    def label_x(self) -> float:
        return self.left + (self.thickness + self.depth[0]) / 2

    @property
    def right(self) -> float:
        return self.left + self.thickness + self.depth[0]

    @property
    def label_bottom(self) -> float:
        """Where the label starts, in inches above the row's centre line."""
        return self.height / 2 + self.depth[1] + LABEL_PAD

    @property
    def above(self) -> float:
        """Inches the box and its label reach above the row's centre line."""
        return self.label_bottom + self.label_length


def _groups(boxes: list[Box]) -> list[list[int]]:
    """Indices of boxes that share a caption: a conv block, or one box outside blocks."""
    groups: list[list[int]] = []
    for index, box in enumerate(boxes):
        if groups and box.block is not None and boxes[groups[-1][0]].block == box.block:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _place_row(boxes: list[Box], measured: list[tuple[float, float]],
               scale: float) -> list[_Placed]:
    """Boxes left to right at ``scale``: as in the VGG16 figure where there is room,
    never closer than LABEL_PITCH between labels, and never with touching captions."""
    placed = [_Placed(box, 0.0, scale, *sizes) for box, sizes in zip(boxes, measured)]
    for last, here in zip(placed, placed[1:]):
        natural = last.thickness + 0.6 * last.depth[0] + 0.1 * scale
        if here.box.block != last.box.block:
            natural += 0.5 * scale
        pitch = LABEL_PITCH - (here.label_x - here.left) + (last.label_x - last.left)
        if here.label_bottom < last.height / 2 + last.depth[1]:
            # A lower box's label rises beside the taller box before it: keep it clear.
            pitch = max(pitch, last.right - last.left + 0.03 + LINE / 2
                        - (here.label_x - here.left))
        here.left = last.left + max(natural, pitch)
    # Move each captioned group, and all after it, right until its caption clears the
    # one before.
    caption_end, shift = -math.inf, 0.0
    for group in _groups(boxes):
        for i in group:
            placed[i].left += shift
        widths = [placed[i].caption_width for i in group if placed[i].box.caption]
        if widths:
            centre = _caption_centre(placed, group)
            more = max(0.0, caption_end + CAPTION_GAP - (centre - widths[-1] / 2))
            for i in group:
                placed[i].left += more
            shift += more
            caption_end = centre + more + widths[-1] / 2
    return placed


def _caption_centre(row: list[_Placed], group: list[int]) -> float:
    return (row[group[0]].left + max(row[i].right for i in group)) / 2


def _extent(row: list[_Placed]) -> tuple[float, float]:
    """(left, right) in inches of everything a row draws: boxes, labels, captions."""
    low = min(min(p.left, p.label_x - LINE / 2) for p in row)
    high = max(max(p.right, p.label_x + LINE / 2) for p in row)
    for group in _groups([p.box for p in row]):
        width = max((row[i].caption_width for i in group if row[i].box.caption), default=0)
        if width:
            centre = _caption_centre(row, group)
            low, high = min(low, centre - width / 2), max(high, centre + width / 2)
    return low, high


def _rows(boxes: list[Box], measured, scale: float, capacity: float) -> list[list[int]] | None:
    """Greedy rows of box indices no wider than ``capacity``, breaking between caption
    groups where it can; None if one box alone is wider."""
    def fits(indices: list[int]) -> bool:
        row = _place_row([boxes[i] for i in indices], [measured[i] for i in indices], scale)
        low, high = _extent(row)
        return high - low <= capacity

    rows: list[list[int]] = [[]]
    for group in _groups(boxes):
        if fits(rows[-1] + group):
            rows[-1] += group
            continue
        if rows[-1] and fits(group):
            rows.append(list(group))
            continue
        for index in group:  # a group too long for any row: break inside it
            if not fits(rows[-1] + [index]):
                if not rows[-1] or not fits([index]):
                    return None
                rows.append([])
            rows[-1].append(index)
    return rows


def _largest_scale(test) -> float:
    """The largest scale from SMALLEST_SCALE up to LARGEST_SCALE for which ``test(scale)``
    holds (bisection: larger scales only ever make rows wider)."""
    if test(LARGEST_SCALE):
        return LARGEST_SCALE
    low, high = SMALLEST_SCALE, LARGEST_SCALE
    for _ in range(14):
        middle = (low + high) / 2
        low, high = (middle, high) if test(middle) else (low, middle)
    return low


def _measure(boxes: list[Box]) -> list[tuple[float, float]]:
    """(label length, caption width) of each box, in inches."""
    return [(_text_size(box.label, FONT_SIZE)[0],
             _text_size(box.caption, FONT_SIZE)[0] if box.caption else 0.0)
            for box in boxes]


def _layout(boxes: list[Box], measured: list[tuple[float, float]]
            ) -> tuple[float, list[list[int]]]:
    """The scale and the rows (box indices): one row as large as fits the width, or else
    the fewest rows at which boxes stay at least SMALLEST_SCALE, their widths balanced."""
    width = FIGURE_WIDTH - 2 * MARGIN
    # No box is anywhere near a row wide, so the smallest boxes always fit some rows.
    count = len(_rows(boxes, measured, SMALLEST_SCALE, width))

    def fits(scale: float, capacity: float = width) -> bool:
        rows = _rows(boxes, measured, scale, capacity)
        return rows is not None and len(rows) <= count

    scale = _largest_scale(fits)
    if count == 1:
        return scale, [list(range(len(boxes)))]
    # The narrowest capacity that still needs no more rows balances their widths.
    low, high = 0.0, width
    for _ in range(14):
        middle = (low + high) / 2
        low, high = (low, middle) if fits(scale, middle) else (middle, high)
    return scale, _rows(boxes, measured, scale, high)


# --- drawing -------------------------------------------------------------------------


def render_diagram(p: Plan, theme: str = "light"):
    """The diagram as a matplotlib Figure (no pyplot, so it is safe in any thread).

    The figure is FIGURE_WIDTH inches wide and as tall as its rows need; ``theme`` is a
    key of THEMES ("light" or "dark"). Raises ValueError for an unknown theme.

    >>> float(render_diagram(plan("archs/vgg16.yaml")).get_size_inches()[0])
    7.0
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    colours = theme_of(theme)
    boxes = diagram_boxes(p)
    measured = _measure(boxes)
    scale, row_indices = _layout(boxes, measured)
    rows = [_place_row([boxes[i] for i in indices], [measured[i] for i in indices], scale)
            for indices in row_indices]

    # Heights from the top: title, then each row (labels, boxes, captions), then legend.
    title = f"{p.spec.name}: {p.params:,} parameters"
    title_height = _text_size(title, TITLE_SIZE)[1] + 0.12
    caption_height = LINE + 0.06
    kinds = [kind for kind in LEGEND if any(box.kind == kind for box in boxes)]
    legend_lines = _legend_lines(kinds)
    legend_height = LEGEND_GAP + len(legend_lines) * LEGEND_LINE
    row_spans = [(max(b.above for b in row), max(b.height / 2 for b in row))
                 for row in rows]
    content = (title_height + sum(a + b + caption_height for a, b in row_spans)
               + ROW_GAP * (len(rows) - 1) + legend_height)
    # Whole eighths of an inch are whole pixels at DPI and any dpi divisible by 8 (72, 96,
    # 400, 600), where Agg would cut 605.8 pixels to 605; the top and bottom margins
    # share the spare height.
    height_in = math.ceil((content + 2 * MARGIN) * 8) / 8
    margin = (height_in - content) / 2

    figure = Figure(figsize=(FIGURE_WIDTH, height_in), dpi=DPI,
                    facecolor=colours.hex("background"))
    # One axes over the whole figure, in inches, so the layout above is what is drawn.
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, FIGURE_WIDTH)
    axes.set_ylim(0, height_in)
    axes.axis("off")
    text = {"fontsize": FONT_SIZE, "color": colours.hex("text")}
    axes.text(FIGURE_WIDTH / 2, height_in - margin, title, ha="center", va="top",
              fontsize=TITLE_SIZE, color=colours.hex("text"))

    top, faces = height_in - margin - title_height, []
    for row, (above, below) in zip(rows, row_spans):
        centre = top - above
        low, high = _extent(row)
        offset = (FIGURE_WIDTH - (high - low)) / 2 - low
        for placed in row:
            faces += _faces(placed, offset, centre)
            axes.text(placed.label_x + offset, centre + placed.label_bottom,
                      placed.box.label, rotation=90, ha="center", va="bottom", **text)
        for group in _groups([placed.box for placed in row]):
            captions = [row[i].box.caption for i in group if row[i].box.caption]
            if captions:
                axes.text(_caption_centre(row, group) + offset, centre - below - 0.06,
                          captions[-1], ha="center", va="top", **text)
        top = centre - below - caption_height - ROW_GAP
    # One collection, drawn in order so each box hides the side of the one before; a
    # patch per face would cost a tenth of a second on a long network.
    axes.add_collection(PolyCollection([points for points, _ in faces],
                                       facecolors=[colour for _, colour in faces],
                                       edgecolors=colours.hex("edge"), linewidths=0.5))

    y = margin + len(legend_lines) * LEGEND_LINE - LEGEND_LINE / 2
    for line in legend_lines:
        widths = [_legend_width(kind) for kind in line]
        x = (FIGURE_WIDTH - sum(widths) - ENTRY_GAP * (len(line) - 1)) / 2
        for kind, width in zip(line, widths):
            axes.add_patch(Rectangle((x, y - SWATCH[1] / 2), *SWATCH, linewidth=0.5,
                                     facecolor=COLOURS[kind], edgecolor=colours.hex("edge")))
            axes.text(x + SWATCH[0] + SWATCH_GAP, y, LEGEND[kind], ha="left",
                      va="center_baseline", **text)
            x += width + ENTRY_GAP
        y -= LEGEND_LINE
    return figure


def _legend_width(kind: str) -> float:
    return SWATCH[0] + SWATCH_GAP + _text_size(LEGEND[kind], FONT_SIZE)[0]


def _legend_lines(kinds: list[str]) -> list[list[str]]:
    """Legend entries flowed into centred lines that fit the figure's width."""
    lines: list[list[str]] = [[]]
    room, used = FIGURE_WIDTH - 2 * MARGIN, 0.0
    for kind in kinds:
        width = _legend_width(kind)
        if lines[-1] and used + ENTRY_GAP + width > room:
            lines.append([])
            used = 0.0
        used += width + (ENTRY_GAP if lines[-1] else 0.0)
        lines[-1].append(kind)
    return lines


def _faces(placed: _Placed, offset: float, centre: float) -> list[tuple[list, tuple]]:
    """The front, top and side faces of a box in perspective, lit from above."""
    left, (dx, dy) = placed.left + offset, placed.depth
    bottom, top = centre - placed.height / 2, centre + placed.height / 2
    right, colour = left + placed.thickness, COLOURS[placed.box.kind]
    return [(points, _shade(colour, shade)) for points, shade in (
        ([(left, bottom), (right, bottom), (right, top), (left, top)], 1.0),
        ([(left, top), (right, top), (right + dx, top + dy), (left + dx, top + dy)], 1.12),
        ([(right, bottom), (right + dx, bottom + dy), (right + dx, top + dy), (right, top)],
         0.82))]


def _shade(colour: str, factor: float) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return tuple(min(1.0, channel * factor) for channel in to_rgb(colour))


def write_diagram(p: Plan, path: str | os.PathLike, theme: str = "light",
                  dpi: int = DPI) -> Path:
    """Draw the diagram to a .png, .svg or .pdf file (the suffix picks), atomically.

    ``theme`` is "light" or "dark" (see THEMES); the page takes its background. SVG and
    PDF keep their text as text (PDF embeds the TrueType font), so it can be searched and
    edited; ``dpi`` sets the PNG's pixels per inch. Raises ValueError for an unknown
    theme, InputError for a path that cannot be written.

    >>> write_diagram(plan("archs/vgg16.yaml"), "vgg16.pdf", theme="dark").name
    'vgg16.pdf'
    """
    import matplotlib

    colours = theme_of(theme)
    path = check_output_file(path, tuple(f".{suffix}" for suffix in FORMATS))
    figure = render_diagram(p, theme)
    # No dates and no random SVG ids, so a redrawn picture of the same spec is the same
    # file, and a regenerated picture in a repository shows no change.
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(path.suffix[1:])
    settings = {"svg.fonttype": "none", "svg.hashsalt": "vggspec", "pdf.fonttype": 42}
    with matplotlib.rc_context(settings), atomic_path(path) as temporary:
        figure.savefig(temporary, format=path.suffix[1:], dpi=dpi,
                       facecolor=colours.hex("background"), metadata=metadata)
    return path
