"""How well a classifier did, in numbers, words and pictures (no TensorFlow).

    labels + probabilities --metrics--> {accuracy, top-5, per class, confusion}
    {accuracy, …} --format_report--> text       confusion --render--> confusion.png
    per-epoch history --render--> curves.png

For `vggspec train` and `vggspec evaluate`: the model's work is done before these
functions are called, so they take plain arrays and dicts and return plain JSON-ready
values. Pictures are matplotlib Figures drawn on their own Agg canvas (never pyplot's
global state, so any thread may draw), at a fixed size in pixels, written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_path, check_output_file
from .errors import clip

DPI = 100
TOP_K = 5
CURVES_SIZE = (1000, 400)          # pixels: two panels side by side
# The confusion picture grows by CELL pixels a class, between these sizes (pixels, the
# square part; the colour bar adds COLOUR_BAR to the width).
CONFUSION_MARGIN, CELL, CONFUSION_MIN, CONFUSION_MAX, COLOUR_BAR = 250, 40, 500, 1800, 120
MAX_NUMBERED = 30                  # above this many classes, no counts in the cells...
MAX_TICK_LABELS = 30               # ...and only every Nth class name on the axes
MAX_MARKED = 60                    # epochs drawn with a marker on each
MAX_REPORT_ROWS = 50
MAX_NAME = 40                      # characters of a class name in the report
MAX_TICK_NAME = 20                 # ...and on the picture's axes


def confusion_matrix(true, predicted, classes: int) -> np.ndarray:
    """Counts of images by true class (rows) and predicted class (columns), int64.

    ``true`` and ``predicted`` are equally long sequences of whole numbers in
    0..classes-1. Raises ValueError for labels out of range, or that are not whole
    numbers, or sequences of different lengths.

    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], classes=3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 1:
        raise ValueError(f"the number of classes must be a whole number of at least 1, "
                         f"got {classes!r}")
    true, predicted = _labels(true, "true"), _labels(predicted, "predicted")
    if true.shape != predicted.shape:
        raise ValueError(f"there must be as many predicted labels as true ones, got "
                         f"{predicted.size:,} predicted for {true.size:,} true")
    for name, labels in (("true", true), ("predicted", predicted)):
        outside = labels[(labels < 0) | (labels >= classes)]
        if outside.size:
            raise ValueError(f"{name} labels must be class numbers 0 to {classes - 1}, got "
                             f"{outside[0]} ({outside.size:,} out of range)")
    flat = np.bincount(true * classes + predicted, minlength=classes * classes)
    return flat.reshape(classes, classes).astype(np.int64)


def _labels(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} labels must be a flat sequence, got shape {array.shape}")
    if array.size == 0 or array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and np.isfinite(array).all() and (array == array.round()).all():
        return array.astype(np.int64)
    raise ValueError(f"{name} labels must be whole class numbers, got {array.dtype} values")


def metrics(true, probabilities, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, top-5 accuracy, per-class precision and recall, and the confusion matrix
    of a classifier's outputs, as a JSON-ready dict.

    ``true`` holds N class numbers; ``probabilities`` is (N, classes), one row of scores
    per image (probabilities or logits: only their order counts), and the prediction is
    each row's highest score, the lowest class number among equal scores.
    ``"top5_accuracy"`` is there only when there are more than five classes. A class never
    predicted has precision None, a class with no images recall None. Raises ValueError
    for mismatched shapes, labels out of range, scores that are not finite, or no images.

    >>> result = metrics([0, 1, 1], [[.9, .1], [.2, .8], [.6, .4]], ["cat", "dog"])
    >>> result["accuracy"], result["classes"][1]
    (0.6666666666666666, {'name': 'dog', 'images': 2, 'precision': 1.0, 'recall': 0.5})
    """
    names = [str(name) for name in class_names]
    scores = np.asarray(probabilities)  # float32 stays float32: no copy of a big array
    if scores.dtype.kind not in "fiu":
        raise ValueError(f"probabilities must be numbers, got {scores.dtype} values")
    true = _labels(true, "true")
    if scores.ndim != 2 or scores.shape[1] != len(names):
        raise ValueError(f"probabilities must be (images, {len(names)}): one score for each "
                         f"of the {len(names)} class names, got shape {scores.shape}")
    if scores.shape[0] != true.size:
        raise ValueError(f"there must be a row of probabilities for each of the {true.size:,} "
                         f"true labels, got {scores.shape[0]:,} rows")
    if true.size == 0:
        raise ValueError("there are no images to measure")
    if not np.all(np.isfinite(scores)):
        raise ValueError("probabilities must be finite numbers, got NaN or infinity")
    matrix = confusion_matrix(true, scores.argmax(axis=1), len(names))
    correct = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    result: dict[str, Any] = {"images": int(true.size),
                              "accuracy": float(correct.sum() / true.size)}
    if len(names) > TOP_K:
        result["top5_accuracy"] = float((_rank(scores, true) < TOP_K).mean())
    result["classes"] = [
        {"name": name, "images": int(support[index]),
         "precision": _share(correct[index], predicted[index]),
         "recall": _share(correct[index], support[index])}
        for index, name in enumerate(names)]
    result["confusion"] = matrix.tolist()
    result["class_names"] = names
    return result


def _rank(scores: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Each true class's place (0 = first) in its row ordered by score, highest first,
    equal scores in class order: its place in a stable argsort of ``-scores``, as argmax
    breaks ties, counted in one pass rather than sorting every row of 1,000 classes."""
    own = scores[np.arange(len(true)), true][:, None]
    before = np.arange(scores.shape[1]) < true[:, None]
    return (scores > own).sum(axis=1) + ((scores == own) & before).sum(axis=1)


def _share(part: int, whole: int) -> float | None:
    return float(part / whole) if whole else None


def format_report(result: dict[str, Any]) -> str:
    """The evaluation as the CLI prints it: accuracy (and top-5) on the first line, then
    a table of the classes: images, precision and recall, a dash where there is none.
    At most MAX_REPORT_ROWS classes are listed; the rest are counted.

    >>> print(format_report(metrics([0, 1, 1], [[.9, .1], [.2, .8], [.6, .4]], ["cat", "dog"])))
    accuracy 0.6667 (2 of 3 images)
    <BLANKLINE>
    class  images  precision  recall
    --------------------------------
    cat         1     0.5000  1.0000
    dog         2     1.0000  0.5000
    """
    images = result["images"]
    if "confusion" in result:
        correct = int(np.trace(np.asarray(result["confusion"], dtype=np.int64)))
    else:
        correct = round(result["accuracy"] * images)
    first = (f"accuracy {result['accuracy']:.4f} ({correct:,} of {images:,} "
             f"image{'' if images == 1 else 's'})")
    if result.get("top5_accuracy") is not None:
        first += f", top-5 {result['top5_accuracy']:.4f}"
    classes = result.get("classes", [])
    header = ("class", "images", "precision", "recall")
    rows = [header] + [(clip(str(entry["name"]), MAX_NAME), f"{entry['images']:,}",
                        _number(entry["precision"]), _number(entry["recall"]))
                       for entry in classes[:MAX_REPORT_ROWS]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [first, ""]
    for position, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if position == 0:
            lines.append("-" * len(lines[-1]))
    if len(classes) > MAX_REPORT_ROWS:
        lines.append(f"... and {len(classes) - MAX_REPORT_ROWS:,} more classes")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# --- pictures -------------------------------------------------------------------------

def confusion_size(classes: int) -> tuple[int, int]:
    """(width, height) in pixels of the confusion picture for this many classes.

    >>> confusion_size(3), confusion_size(10), confusion_size(1000)
    ((620, 500), (770, 650), (1920, 1800))
    """
    side = min(CONFUSION_MAX, max(CONFUSION_MIN, CONFUSION_MARGIN + CELL * classes))
    return side + COLOUR_BAR, side


def render_confusion(matrix, class_names: Sequence[str], title: str = ""):
    """The confusion picture as a matplotlib Figure (see write_confusion).

    >>> render_confusion([[5, 1], [0, 4]], ["cat", "dog"]).canvas.get_width_height()
    (620, 500)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    names = [str(name) for name in class_names]
    classes = len(names)
    if matrix.shape != (classes, classes) or classes == 0:
        raise ValueError(f"a confusion matrix is (classes, classes), one row and column for "
                         f"each of the {classes} class names, got shape {matrix.shape}")
    if matrix.dtype.kind not in "iu" or (matrix < 0).any():
        raise ValueError("a confusion matrix holds counts: whole numbers, 0 or more")
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    width, height = confusion_size(classes)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1,
                        interpolation="nearest" if classes <= 300 else "antialiased")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.03,
                    label="share of the true class's images")
    step = math.ceil(classes / MAX_TICK_LABELS)
    ticks = list(range(0, classes, step))
    labels = [clip(names[index], MAX_TICK_NAME) for index in ticks]
    font = 10 if classes <= 10 else 8 if classes <= MAX_NUMBERED else 7
    axes.set_xticks(ticks)
    axes.set_yticks(ticks)
    # parse_math off: a class called "$5 note" is text, not a broken formula.
    axes.set_yticklabels(labels, fontsize=font, parse_math=False)
    longest = max(len(label) for label in labels)
    if (classes <= 5 and longest <= 8) or (classes <= MAX_NUMBERED and longest <= 2):
        axes.set_xticklabels(labels, fontsize=font, parse_math=False)
    else:
        axes.set_xticklabels(labels, fontsize=font, parse_math=False,
                             rotation=45 if classes <= MAX_NUMBERED else 90,
                             ha="right", rotation_mode="anchor")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if title:
        axes.set_title(title, parse_math=False)
    # Freeze the layout before adding up to MAX_NUMBERED**2 counts: with a layout
    # engine, saving would draw each count twice. Rotated names need a second pass.
    _settle(figure, passes=2)
    if classes <= MAX_NUMBERED:
        cell = (min(width - COLOUR_BAR, height) - 200) / classes
        digits = len(str(int(matrix.max())))
        size = min(14.0, max(5.0, min(0.36 * cell, cell / digits)))
        for (row, column), count in np.ndenumerate(matrix):
            # Light text on dark cells, dark text on light ones.
            axes.text(column, row, str(count), ha="center", va="center", fontsize=size,
                      color="white" if shares[row, column] > 0.5 else "black")
    return figure


def write_confusion(matrix, class_names: Sequence[str], path: str | os.PathLike,
                    title: str = "") -> Path:
    """Draw a confusion matrix to a PNG file, atomically: rows are true classes, columns
    predicted ones, each cell shaded by its share of its row (so rare classes show as
    clearly as common ones) and, up to MAX_NUMBERED classes, labelled with its count.
    The picture is ``confusion_size(classes)`` pixels. Raises ValueError for a matrix
    that does not fit the names, InputError for a path that cannot be written.

    >>> write_confusion([[5, 1], [0, 4]], ["cat", "dog"], "confusion.png", "test set")
    PosixPath('confusion.png')
    """
    path = check_output_file(path, (".png",))
    return _save(render_confusion(matrix, class_names, title), path)


def render_curves(history: Sequence[dict[str, Any]], title: str = ""):
    """The training curves as a matplotlib Figure (see write_curves).

    >>> [axes.get_title() for axes in render_curves([{"loss": 0.7}]).axes]
    ['loss', 'accuracy']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ValueError("there is no history to draw: no epoch has finished")
    epochs = [index + 1 if entry.get("epoch") is None else _value(entry["epoch"])
              for index, entry in enumerate(history)]
    width, height = CURVES_SIZE
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    for column, quantity in enumerate(("loss", "accuracy")):
        axes = figure.add_subplot(1, 2, column + 1)
        for key, label in ((quantity, "training"), (f"val_{quantity}", "validation")):
            # Epochs without the value (validation every few epochs) are skipped, so
            # the points that are there still join up.
            points = [(epoch, value) for epoch, value in
                      zip(epochs, (_value(entry.get(key)) for entry in history))
                      if not math.isnan(value)]
            if points:
                # Markers, so that a single epoch is a visible point.
                axes.plot(*zip(*points), label=label, clip_on=False,
                          marker="o" if len(points) <= MAX_MARKED else "",
                          markersize=4)
        axes.set_title(quantity)
        axes.set_xlabel("epoch")
        axes.set_ylabel(quantity)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(set(epochs)) == 1:
            axes.set_xlim(epochs[0] - 1, epochs[0] + 1)
        if quantity == "accuracy":
            axes.set_ylim(0, 1)
        axes.grid(True, alpha=0.3)
        if axes.lines:
            axes.legend()
        else:
            axes.text(0.5, 0.5, f"no {quantity} recorded", ha="center", va="center",
                      transform=axes.transAxes, color="grey")
    if title:
        figure.suptitle(title, parse_math=False)
    _settle(figure)
    return figure


def _settle(figure, passes: int = 1) -> None:
    """Run the constrained layout and fix it, so that the figure's coordinates are those
    of the saved picture and saving draws once."""
    for _ in range(passes):
        figure.draw_without_rendering()
    figure.set_layout_engine(None)


def _value(value) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"history values must be numbers, got {value!r}") from None


def write_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike,
                 title: str = "") -> Path:
    """Draw loss and accuracy per epoch, training and validation, to a PNG file,
    atomically; CURVES_SIZE pixels.

    ``history`` is a list of per-epoch dicts with "epoch", "loss", "accuracy",
    "val_loss" and "val_accuracy" (any may be missing: "epoch" counts from 1, a
    missing series is not drawn). Raises ValueError for an empty history or values that
    are not numbers, InputError for a path that cannot be written.

    >>> write_curves([{"epoch": 1, "loss": 2.1, "accuracy": 0.31},
    ...               {"epoch": 2, "loss": 1.4, "accuracy": 0.52}], "curves.png")
    PosixPath('curves.png')
    """
    path = check_output_file(path, (".png",))
    return _save(render_curves(history, title), path)


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI, facecolor="white")
    return path
