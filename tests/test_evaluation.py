"""Evaluation: counts and shares checked by hand, the report's exact text, and the
pictures' size, colours and atomic writing."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from conftest import run_python
from vggspec.errors import InputError
from vggspec.evaluation import (CURVES_SIZE, MAX_REPORT_ROWS, confusion_matrix,
                                confusion_size, format_report, metrics, render_confusion,
                                render_curves, write_confusion, write_curves)

# Three classes, nine images; by hand:  predicted  0  1  2
#                                      true 0     2  1  0   (3 images)
#                                      true 1     0  2  0   (2 images)
#                                      true 2     2  0  2   (4 images)
TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
PREDICTED = [0, 0, 1, 1, 1, 2, 2, 0, 0]
EXPECTED = [[2, 1, 0], [0, 2, 0], [2, 0, 2]]
NAMES = ["cat", "dog", "bird"]
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours


def one_hot_ish(predicted, classes: int) -> np.ndarray:
    """Probability rows whose highest entry is ``predicted``."""
    scores = np.full((len(predicted), classes), 0.1 / classes)
    scores[np.arange(len(predicted)), predicted] = 0.9
    return scores


def test_confusion_matrix_counts_by_hand():
    matrix = confusion_matrix(TRUE, PREDICTED, 3)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == EXPECTED
    assert confusion_matrix(np.array([1, 1]), np.array([1, 0]), 4).tolist() == [
        [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("true, predicted, message", [
    ([0, 3], [0, 1], "true labels must be class numbers 0 to 2, got 3 (1 out of range)"),
    ([0, 1], [-1, 1], "predicted labels must be class numbers 0 to 2, got -1"),
    ([0, 1], [0], "there must be as many predicted labels as true ones, got 1 predicted "
                  "for 2 true"),
    ([0.5, 1], [0, 1], "true labels must be whole class numbers, got float64 values"),
])
def test_confusion_matrix_refuses_labels_it_cannot_count(true, predicted, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        confusion_matrix(true, predicted, 3)


def test_metrics_by_hand():
    result = metrics(TRUE, one_hot_ish(PREDICTED, 3), NAMES)
    assert result["images"] == 9
    assert result["accuracy"] == pytest.approx(6 / 9)
    assert "top5_accuracy" not in result            # only three classes
    assert "loss" not in result
    assert result["confusion"] == EXPECTED
    assert result["class_names"] == NAMES
    assert [entry["name"] for entry in result["classes"]] == NAMES
    assert [entry["images"] for entry in result["classes"]] == [3, 2, 4]
    # precision = right / predicted as the class (columns 4, 3, 2);
    # recall = right / images of the class (rows 3, 2, 4).
    assert [entry["precision"] for entry in result["classes"]] == pytest.approx(
        [2 / 4, 2 / 3, 2 / 2])
    assert [entry["recall"] for entry in result["classes"]] == pytest.approx(
        [2 / 3, 2 / 2, 2 / 4])
    assert list(result) == ["images", "accuracy", "classes", "confusion", "class_names"]


def test_never_predicted_and_absent_classes_are_none_and_json_round_trips():
    # Class 2 is never predicted (no precision); class 3 has no images (no recall).
    true, predicted = [0, 1, 2, 2], [0, 1, 0, 3]
    result = metrics(np.array(true), one_hot_ish(predicted, 4), ["a", "b", "c", "d"])
    c, d = result["classes"][2], result["classes"][3]
    assert c == {"name": "c", "images": 2, "precision": None, "recall": 0.0}
    assert d == {"name": "d", "images": 0, "precision": 0.0, "recall": None}
    text = json.dumps(result, allow_nan=False)      # no NaN, no numpy types
    assert json.loads(text) == result
    assert all(type(count) is int for row in result["confusion"] for count in row)
    assert type(result["accuracy"]) is float and type(result["images"]) is int


def test_top5_only_above_five_classes_and_counted_on_a_constructed_case():
    assert "top5_accuracy" not in metrics([0, 4], np.eye(5)[[0, 1]], list("abcde"))
    # Seven classes; the true class's rank in each row: 1st, 5th, 6th, 7th.
    rows = np.array([[.70, .10, .08, .05, .04, .02, .01],
                     [.30, .25, .20, .15, .05, .03, .02],
                     [.30, .25, .20, .15, .05, .03, .02],
                     [.30, .25, .20, .15, .05, .03, .02]])
    result = metrics([0, 4, 5, 6], rows, list("abcdefg"))
    assert result["accuracy"] == 0.25
    assert result["top5_accuracy"] == 0.5
    assert list(result)[:3] == ["images", "accuracy", "top5_accuracy"]


def test_ties_rank_the_lower_class_first_in_prediction_and_top5():
    flat = np.full((2, 6), 1 / 6)                   # every class scores the same
    result = metrics([4, 5], flat, list("abcdef"))
    assert result["confusion"][4][0] == result["confusion"][5][0] == 1  # argmax: class 0
    assert result["top5_accuracy"] == 0.5           # classes 0-4 make the top five
    assert metrics([4, 5], flat, list("abcdef")) == result


def test_top5_ranks_like_a_stable_argsort():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(400, 9)).astype(np.float32)  # many ties
    true = rng.integers(0, 9, size=400)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    expected = (top == true[:, None]).any(axis=1).mean()
    assert 0.3 < expected < 0.9                     # hits and misses both happen
    assert metrics(true, scores, list("abcdefghi"))["top5_accuracy"] == expected


@pytest.mark.parametrize("true, scores, message", [
    ([0, 1], np.ones((2, 2)), r"probabilities must be \(images, 3\)"),
    ([0, 1, 2], np.ones((2, 3)), "there must be a row of probabilities for each of the 3"),
    ([], np.ones((0, 3)), "there are no images to measure"),
    ([0, 1], [[0, 1, math.nan], [1, 0, 0]], "probabilities must be finite numbers"),
    ([0, 7], np.ones((2, 3)), "true labels must be class numbers 0 to 2, got 7"),
    ([0, 1], np.array([["a"] * 3] * 2), "probabilities must be numbers, got <U1 values"),
])
def test_metrics_refuses_outputs_that_do_not_fit(true, scores, message):
    with pytest.raises(ValueError, match=message):
        metrics(true, scores, NAMES)


def test_report_first_line_and_table():
    result = {"images": 1797, "accuracy": 1748 / 1797, "classes": []}
    assert format_report(result).splitlines()[0] == "accuracy 0.9727 (1,748 of 1,797 images)"
    result["top5_accuracy"] = 0.99889
    assert format_report(result).splitlines()[0] == (
        "accuracy 0.9727 (1,748 of 1,797 images), top-5 0.9989")
    report = format_report(metrics([0, 1, 2, 2], one_hot_ish([0, 1, 0, 3], 4),
                                   ["cat", "dog", "tabby cat", "x"]))
    assert report.splitlines() == [
        "accuracy 0.5000 (2 of 4 images)",
        "",
        "class      images  precision  recall",
        "------------------------------------",
        "cat             1     0.5000  1.0000",
        "dog             1     1.0000  1.0000",
        "tabby cat       2          -  0.0000",
        "x               0     0.0000       -",
    ]


def test_report_lists_at_most_fifty_classes():
    classes = MAX_REPORT_ROWS + 7
    result = metrics(np.arange(classes), np.eye(classes), [f"c{i}" for i in range(classes)])
    lines = format_report(result).splitlines()
    assert lines[0] == f"accuracy 1.0000 ({classes} of {classes} images), top-5 1.0000"
    assert lines[4].split() == ["c0", "1", "1.0000", "1.0000"]
    assert lines[-2].split()[0] == f"c{MAX_REPORT_ROWS - 1}"
    assert lines[-1] == "... and 7 more classes"
    assert len(lines) == 4 + MAX_REPORT_ROWS + 1


def _read(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _cell_pixel(figure, row: int, column: int, offset=(0.0, 0.0)) -> tuple[int, int]:
    """(y, x) in the PNG of a point in a confusion cell, offset in cell units."""
    axes = figure.axes[0]
    x, y = axes.transData.transform((column + offset[0], row + offset[1]))
    return int(round(figure.bbox.height - y)), int(round(x))


def test_confusion_picture_size_and_colours(tmp_path):
    # A rare class (2 of 2 right) is as dark as a common one: colours are row shares.
    matrix = np.array([[50, 3, 0, 0], [2, 40, 8, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    names = ["cat", "dog", "$5 bird", "fish"]      # a "$" is text, not a formula
    path = write_confusion(matrix, names, tmp_path / "confusion.png", "test set")
    assert path == tmp_path / "confusion.png"
    pixels = _read(path)
    assert pixels.shape == (500, 620, 3) and confusion_size(4) == (620, 500)
    assert pixels.std() > 30 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50

    figure = render_confusion(matrix, names, "test set")  # same layout, to find cells

    def cell_colour(row, column):
        # A corner of the cell, clear of the count written at its centre.
        y, x = _cell_pixel(figure, row, column, (-0.35, -0.35))
        return pixels[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3).astype(int).mean(axis=0)

    full, rare, empty, some = (cell_colour(0, 0), cell_colour(2, 2), cell_colour(3, 3),
                               cell_colour(1, 2))
    assert full.sum() < 300 < 700 < empty.sum()     # 50 of 53: dark; no images: white
    assert rare.sum() < 300                         # 2 of 2: dark too
    assert np.ptp(full) > 2 * np.ptp(empty)         # and saturated blue
    assert full[2] > full[0]
    assert empty.sum() > some.sum() > full.sum()    # 8 of 50 sits between
    # The count's text: white on the dark cell, black on the light one.
    y, x = _cell_pixel(figure, 0, 0)
    centre = pixels[y - 8:y + 9, x - 12:x + 13].astype(int).sum(axis=2)
    assert centre.max() > 720
    y, x = _cell_pixel(figure, 0, 1)
    centre = pixels[y - 8:y + 9, x - 12:x + 13].astype(int).sum(axis=2)
    assert centre.min() < 100
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts == [str(count) for count in matrix.ravel()]
    assert figure.axes[0].get_xlabel() == "predicted"
    assert figure.axes[0].get_ylabel() == "true"


def test_many_classes_drop_the_counts_and_thin_the_labels():
    classes = 31
    matrix = np.diag(np.arange(1, classes + 1))
    names = [f"class {i}" for i in range(classes)]
    figure = render_confusion(matrix, names)
    assert figure.canvas.get_width_height() == confusion_size(classes) == (1610, 1490)
    axes = figure.axes[0]
    assert len(axes.texts) == 0
    assert [label.get_text() for label in axes.get_xticklabels()] == names[::2]
    assert confusion_size(10) == (770, 650) and confusion_size(500) == (1920, 1800)


def test_confusion_picture_refuses_a_matrix_that_does_not_fit(tmp_path):
    with pytest.raises(ValueError, match=r"one row and column for each of the 2 class names"):
        write_confusion(np.zeros((3, 3), int), ["a", "b"], tmp_path / "c.png")
    with pytest.raises(ValueError, match="holds counts"):
        write_confusion([[1, -1], [0, 1]], ["a", "b"], tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def _colour_count(pixels: np.ndarray, colour) -> int:
    return int((np.abs(pixels.astype(int) - colour).sum(axis=2) < 30).sum())


def test_curves_with_one_epoch_and_no_validation(tmp_path):
    path = write_curves([{"epoch": 1, "loss": 2.3, "accuracy": 0.12}], tmp_path / "c.png")
    pixels = _read(path)
    assert pixels.shape == (CURVES_SIZE[1], CURVES_SIZE[0], 3) == (400, 1000, 3)
    assert pixels.std() > 20
    assert _colour_count(pixels, ORANGE) == 0       # no validation line
    figure = render_curves([{"epoch": 1, "loss": 2.3, "accuracy": 0.12}])
    loss, accuracy = figure.axes
    for axes, value in ((loss, 2.3), (accuracy, 0.12)):  # the lone point is drawn
        x, y = axes.transData.transform((1, value))
        y = int(round(figure.bbox.height - y))
        x = int(round(x))
        assert _colour_count(pixels[y - 4:y + 5, x - 4:x + 5], BLUE) > 20
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["training"]
    assert accuracy.get_ylim() == (0, 1)
    assert loss.get_xlabel() == accuracy.get_xlabel() == "epoch"


def test_curves_with_validation_every_other_epoch(tmp_path):
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1)} for e in range(1, 7)]
    for entry in history[1::2]:
        entry.update(val_loss=entry["loss"] * 1.2, val_accuracy=entry["accuracy"] - 0.1)
    pixels = _read(write_curves(history, tmp_path / "c.png", "run 1"))
    assert pixels.shape == (400, 1000, 3)
    assert _colour_count(pixels[:, :500], ORANGE) > 50
    assert _colour_count(pixels[:, 500:], ORANGE) > 50
    loss, accuracy = render_curves(history).axes
    training, validation = accuracy.lines
    assert list(validation.get_xdata()) == [2, 4, 6]  # joined up across missing epochs
    assert list(training.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert all(tick == int(tick) for tick in loss.get_xticks())


def test_curves_refuse_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="no epoch has finished"):
        write_curves([], tmp_path / "c.png")
    with pytest.raises(ValueError, match="history values must be numbers, got 'high'"):
        write_curves([{"loss": "high"}], tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_refused_before_drawing(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        write_confusion([[1]], ["a"], tmp_path / "missing" / "c.png")
    with pytest.raises(InputError, match="no such folder"):
        write_curves([{"loss": 1.0}], tmp_path / "missing" / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing_partial(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def half_written(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    old = tmp_path / "confusion.png"
    old.write_bytes(b"the previous picture")
    with pytest.raises(OSError, match="disk full"):
        write_confusion([[1, 0], [0, 1]], ["a", "b"], old)
    with pytest.raises(OSError, match="disk full"):
        write_curves([{"loss": 1.0}], tmp_path / "curves.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png"]
    assert old.read_bytes() == b"the previous picture"


def test_evaluation_imports_neither_tensorflow_nor_pyplot():
    result = run_python(
        "import sys, tempfile, os\n"
        "from vggspec.evaluation import metrics, render_confusion, write_curves\n"
        "metrics([0, 1], [[1, 0], [0, 1]], ['a', 'b'])\n"
        "render_confusion([[1, 0], [0, 1]], ['a', 'b'])\n"
        "write_curves([{'loss': 1.0}], os.path.join(tempfile.mkdtemp(), 'k.png'))\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib.pyplot')"
        " if m in sys.modules))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
