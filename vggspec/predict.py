"""Predictions: the top classes of each image, by name.

    SPEC + weights, or a model from vggspec train --load_predictor--> Predictor
    Predictor + image files --predict--> one Prediction per image (top k classes)

Images are read and prepared exactly as ``features`` does (vggspec.features). Class
names come, first to last, from a labels file, the names a trained model carries,
ImageNet's for a 1,000-class head (package data: vggspec/labels/imagenet.txt, whose
header names its source), or else the output numbers. Checks run before TensorFlow is
imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import open_regular
from .errors import InputError, SpecError, UsageError, clip, did_you_mean, printable

MAX_LABELS_BYTES = 1 << 22
IMAGENET_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """ImageNet-1k's (WordNet id, name) pairs, in output order (index 0 is tench).

    >>> imagenet_classes()[1]
    ('n01443537', 'goldfish')
    """
    text = resources.files("vggspec.labels").joinpath("imagenet.txt").read_text("utf-8")
    rows = [line.split(" ", 1) for line in text.splitlines()
            if line and not line.startswith("#")]
    return tuple((wnid, name) for wnid, name in rows)


def read_labels(path: str | os.PathLike, count: int | None = None) -> list[str]:
    """Class names from a text file, one per line in output order (blank lines and
    surrounding spaces ignored; a name may repeat, as ImageNet's crane does: --class
    then asks for the number). Raises InputError for a file that cannot be read, is not
    UTF-8 text, or (with ``count``) has another number of names.

    >>> _ = Path("labels.txt").write_text("cat\\n dog \\n\\nbird\\n")
    >>> read_labels("labels.txt", 3)
    ['cat', 'dog', 'bird']
    """
    with open_regular(path, "labels file") as handle:
        data = handle.read(MAX_LABELS_BYTES + 1)
    if len(data) > MAX_LABELS_BYTES:
        raise InputError(f"{path}: labels file is over {MAX_LABELS_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: labels file is not UTF-8 text") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise InputError(f"{path}: labels file has no class names (one per line)")
    if count is not None and len(names) != count:
        raise InputError(f"{path}: {len(names)} class names, but the model has {count} "
                         f"outputs (one name per line, in output order)")
    return names


@dataclass(frozen=True)
class Source:
    """What predict will run, checked without TensorFlow: a spec (its plan) or a model
    written by vggspec train (its file and vggspec.json)."""

    name: str
    input_shape: tuple
    classes: int
    class_names: tuple[str, ...]
    names_from: str          # "labels file", "the model", "ImageNet" or "output numbers"
    preprocess: str
    resize: str
    plan: object = None      # a Plan: the spec, or the one a trained model carries
    model_path: Path | None = None
    info: dict = field(default_factory=dict)


def check_source(source, *, labels: str | os.PathLike | None = None,
                 preprocess: str | None = None, resize: str | None = None,
                 weights_preprocess: str | None = None,
                 max_weight_bytes: int | None = None) -> Source:
    """Check what ``predict`` is asked to run, before anything is built: ``source`` is a
    spec (path, name or Plan) or a run folder / .keras file from vggspec train. Raises
    SpecError for a spec without a classifier head, InputError for a model or labels
    file that cannot be used, UsageError for preprocessing that does not fit."""
    from .features import check_preprocessing, default_preprocessing
    from .plan import Plan, plan

    path = None if isinstance(source, Plan) else Path(source)
    if path is not None and (path.is_dir() or path.suffix == ".keras"):
        from .training import _checked_info, model_info, trained_model_file

        model_path = trained_model_file(path, "a spec, ")
        info = _checked_info(model_path, model_info(model_path))
        names = info["class_names"]
        mode = preprocess or info["preprocess"]
        check_preprocessing(mode, info["input_shape"][2])
        source = Source(model_path.name if path.is_file() else path.resolve().name,
                        tuple(info["input_shape"]), len(names), tuple(names), "the model",
                        mode, resize or info["resize"], plan=_carried_plan(info),
                        model_path=model_path, info=info)
    else:
        layout = source if path is None else plan(source, max_weight_bytes)
        head = layout.spec.head
        if layout.layers[-1].name != "predictions":
            raise SpecError([layout.spec.issue(
                "$.head.type", f"head {head.type!r} has no classifier (predictions layer), "
                f"so there is nothing to predict; use features or embed")])
        classes = layout.layers[-1].config["units"]
        channels = layout.spec.input_shape[2]
        mode = preprocess or weights_preprocess or default_preprocessing(channels)
        check_preprocessing(mode, channels)
        if classes == IMAGENET_CLASSES:
            names, origin = tuple(name for _, name in imagenet_classes()), "ImageNet"
        else:
            names, origin = tuple(f"class {i}" for i in range(classes)), "output numbers"
        source = Source(layout.spec.name, tuple(layout.spec.input_shape), classes, names,
                        origin, mode, resize or "crop", plan=layout)
    if labels is not None:
        source = replace(source, class_names=tuple(read_labels(labels, source.classes)),
                         names_from="labels file")
    return source


def _carried_plan(info: dict):
    """The plan of the spec a trained model carries, for checking layer names before
    the model is loaded; None where it does not plan (the model is checked then)."""
    import json

    from .plan import plan
    from .spec import spec_from_text

    try:
        return plan(spec_from_text(json.dumps(info.get("spec")), "vggspec.json"))
    except (SpecError, InputError, UsageError, TypeError, ValueError):
        return None


def class_index(source: Source, wanted: str) -> int:
    """The output index a --class value names: a class name, an output number, or (for
    ImageNet's names) a WordNet id. Raises UsageError for a name that is not a class, or
    one that two classes share (ImageNet's crane and maillot), naming the numbers."""
    names = source.class_names
    matches = [index for index, name in enumerate(names) if name == wanted]
    if not matches and source.names_from == "ImageNet":
        matches = [index for index, (wnid, _) in enumerate(imagenet_classes())
                   if wnid == wanted]
    number = wanted.strip()
    if not matches and number.isascii() and number.isdigit():
        if int(number) < len(names):
            return int(number)
        raise UsageError(f"output number {clip(number)} is out of range: {source.name} has "
                         f"outputs 0 to {len(names) - 1}")
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"class {printable(repr(wanted))} is the name of outputs "
                         f"{' and '.join(map(str, matches))}; give the number instead")
    hint = did_you_mean(wanted, names)
    raise UsageError(f"{printable(repr(wanted))} is not a class of {source.name} "
                     f"({len(names)} classes, names from {source.names_from}; an output "
                     f"number 0-{len(names) - 1} works too){hint}")


@dataclass(frozen=True)
class Prediction:
    """One image's top classes: (output index, class name, probability), best first."""

    path: Path
    top: list[tuple[int, str, float]]
    probabilities: np.ndarray = field(repr=False)
    image: np.ndarray = field(repr=False)   # the pixels the model saw, 0..255


@dataclass
class PredictionReport:
    predictions: list[Prediction] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def load_model(source: Source, weights: str | os.PathLike | None = None):
    """The Keras model for a checked source: built from the spec (with ``weights``), or
    the trained model loaded."""
    if source.model_path is not None:
        from .training import _load_trained

        return _load_trained(source.model_path, source.info)
    from .builder import build_model

    return build_model(source.plan, weights=weights, max_weight_bytes=None)


def probabilities_of(model, outputs: np.ndarray) -> np.ndarray:
    """Outputs as probabilities: a softmax for a head whose last layer is linear."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if model.layers[-1].get_config().get("activation") == "linear":
        outputs = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        outputs /= outputs.sum(axis=-1, keepdims=True)
    return outputs


def predict(source: Source, model, images: list[str | os.PathLike], *, top: int = 5,
            batch_size: int = 16, progress: Callable[[int, int], None] | None = None,
            each: Callable[[list[Prediction]], None] | None = None) -> PredictionReport:
    """Top-``top`` classes for each image, read and prepared as ``features`` does;
    images that cannot be read are skipped and listed in ``failed``. ``each`` is called
    with each batch's predictions as they come (the CLI prints and draws from it).

    >>> source = check_source("archs/vgg16.yaml")
    >>> source.names_from, source.class_names[281]
    ('ImageNet', 'tabby')
    >>> report = predict(source, load_model(source), ["extra.jpg"], top=3)  # untrained
    >>> len(report.predictions[0].top), report.failed
    (3, [])
    """
    from .backends import compiled_call, quiet_keras
    from .features import batches, load_image, preprocess

    keras = quiet_keras()
    run = compiled_call(keras.Model(model.input, {"out": model.output}))
    height, width, channels = source.input_shape
    size = batch_size if height is not None and width is not None else 1
    report = PredictionReport()
    files = [Path(image) for image in images]
    done = 0
    for group in batches(files, size):
        loaded = []
        for path in group:
            try:
                loaded.append((path, load_image(path, channels, (height, width),
                                                source.resize)))
            except InputError as error:
                report.failed.append((path, str(error)))
        batch_predictions = []
        if loaded:
            pixels = np.stack([array for _, array in loaded])
            outputs = run(preprocess(pixels, source.preprocess))["out"]
            for (path, array), row in zip(loaded, probabilities_of(model, outputs)):
                if not np.isfinite(row).all():
                    report.failed.append((path, f"{path}: the model's outputs are not "
                                                f"finite numbers"))
                    continue
                order = np.argsort(-row, kind="stable")[:top]
                batch_predictions.append(Prediction(
                    path, [(int(i), source.class_names[i], float(row[i])) for i in order],
                    row, array))
        report.predictions += batch_predictions
        if each and batch_predictions:
            each(batch_predictions)
        done += len(group)
        if progress:
            progress(done, len(files))
    return report
