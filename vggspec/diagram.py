"""The architecture picture, from the plan alone (no TensorFlow).

    Spec --plan--> layers --diagram--> PNG or SVG

Each layer is a box in perspective: its height follows the feature map's spatial size,
its thickness the channel count, as in the classic VGG16 figure; labels use the paper's
notation (conv3-64, maxpool, FC-4096, soft-max), with each block's output shape below.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ._files import atomic_path, check_output_file
from .kinds import activation_label, kind_of
from .plan import Plan

COLOURS = {
    "conv": "#9ecae1", "bn": "#fdd0a2", "lrn": "#fdae6b", "pool": "#e6550d",
    "fc": "#74c476", "softmax": "#9e9ac8", "global": "#fd8d3c", "input": "#d9d9d9",
}
LEGEND = {"input": "input", "conv": "convolution + activation", "bn": "batch norm",
          "lrn": "local response norm", "pool": "pooling", "global": "global pooling",
          "fc": "fully connected + activation", "softmax": "soft-max"}
NOMINAL_SIZE = 224  # drawn size of an open (None) input dimension


@dataclass(frozen=True)
class Box:
    """One drawn layer: its label in the paper's notation and its drawn proportions."""

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
    return 0.12 + 0.11 * max(0.0, math.log2(max(channels, 1) / 8))


def _shape_text(shape) -> str:
    return "×".join("?" if s is None else str(s) for s in shape)


def diagram_boxes(p: Plan) -> list[Box]:
    """The boxes to draw, in order, with paper-notation labels (no drawing, no files)."""
    first = p.layers[0].output_shape
    reference = max(s for s in first[:2] if s is not None) if any(first[:2]) else NOMINAL_SIZE
    boxes = [Box(kind_of("InputLayer").label(p.layers[0].config), "input",
                 _size(first[0], reference), _thickness(first[2]), None)]
    for layer in p.layers[1:]:
        kind = kind_of(layer.kind)
        shape, config, style = layer.output_shape, layer.config, kind.style
        if style is None:  # activations draw as part of their conv; flatten, dropout not at all
            continue
        if style == "global":
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


def render_diagram(p: Plan):
    """The diagram as a matplotlib Figure (no pyplot, so it is safe in any thread)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Polygon

    boxes = diagram_boxes(p)
    x, positions, previous_block = 0.0, [], "start"
    for box in boxes:
        if box.block != previous_block:
            x += 0.5
        positions.append(x)
        x += box.thickness + box.height * 0.45 * 0.55 * 0.6 + 0.1
        previous_block = box.block
    tallest = max(box.height for box in boxes)
    low, high = -tallest / 2 - 1.0, tallest / 2 + tallest * 0.16 + 1.9
    height_in = 4.8
    width_in = min(40.0, max(6.0, height_in * 0.76 / 0.98 * (x + 1.2) / (high - low)))
    figure = Figure(figsize=(width_in, height_in), dpi=110)
    axes = figure.add_axes((0.01, 0.12, 0.98, 0.76))
    spans: dict[int, list[float]] = {}
    for box, left in zip(boxes, positions):
        depth = box.height * 0.45
        dx, dy = depth * 0.55, depth * 0.35
        bottom, top, right = -box.height / 2, box.height / 2, left + box.thickness
        colour = COLOURS[box.kind]
        for points, shade in (
                ([(left, bottom), (right, bottom), (right, top), (left, top)], 1.0),
                ([(left, top), (right, top), (right + dx, top + dy), (left + dx, top + dy)], 1.12),
                ([(right, bottom), (right + dx, bottom + dy), (right + dx, top + dy),
                  (right, top)], 0.82)):
            axes.add_patch(Polygon(points, closed=True, facecolor=_shade(colour, shade),
                                   edgecolor="#333333", linewidth=0.5))
        axes.text(left + box.thickness / 2 + dx / 2, top + dy + 0.12, box.label, rotation=90,
                  ha="center", va="bottom", fontsize=8)
        key = box.block if box.block is not None else -len(spans) - 1
        spans.setdefault(key, []).extend([left, right + dx])
        if box.caption:
            edges = spans[key]
            axes.text((min(edges) + max(edges)) / 2, -tallest / 2 - 0.3, box.caption,
                      ha="center", va="top", fontsize=8)
    axes.set_xlim(-0.2, x + 1.0)
    axes.set_ylim(low, high)
    axes.axis("off")
    kinds = [kind for kind in LEGEND if any(box.kind == kind for box in boxes)]
    figure.legend(handles=[Patch(facecolor=COLOURS[k], edgecolor="#333333", label=LEGEND[k])
                           for k in kinds], loc="lower center", ncol=len(kinds), fontsize=8,
                  frameon=False)
    figure.suptitle(f"{p.spec.name}: {p.params:,} parameters", fontsize=11)
    return figure


def _shade(colour: str, factor: float) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return tuple(min(1.0, channel * factor) for channel in to_rgb(colour))


def write_diagram(p: Plan, path: str | os.PathLike) -> Path:
    """Draw the diagram to a .png or .svg file, atomically. SVG keeps its text as text."""
    import matplotlib

    path = check_output_file(path, (".png", ".svg"))
    figure = render_diagram(p)
    with matplotlib.rc_context({"svg.fonttype": "none"}), atomic_path(path) as temporary:
        figure.savefig(temporary, format=path.suffix[1:], facecolor="white")
    return path
