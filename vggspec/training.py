"""`vggspec train` and `vggspec evaluate` as library calls.

    Spec + image folders --data--> tf.data batches --keras fit--> RUN/ (models, history,
    curves, metrics) --evaluate--> accuracy, per-class figures, confusion picture

Training is Keras' own ``fit`` with Keras' optimizers, schedules, losses and TensorBoard
callback; vggspec adds what a run should leave behind and what a resume needs. After
each epoch the chief writes, each file atomically (a temporary name renamed into place):
``last.keras`` (the model with its optimizer state: the resumable state), ``best.keras``
when the monitored figure improved, ``history.csv``, ``curves.png`` and ``state.json``
(the epochs done and what the run was made with). Everything random is drawn from
(seed, epoch): the weights' initialisation from the seed, each epoch's order and
augmentation by stateless ops, dropout's generators reset as each epoch begins; so
``resume`` after Ctrl-C ends where an uninterrupted run would.

Models are saved as plain ``.keras`` files (``keras.models.load_model`` reads them) with
one more entry in the archive, ``vggspec.json``: the class names, the preprocessing, the
resize policy and the resolved spec. ``model_info`` reads it.

Distribution is TensorFlow's (vggspec.distribute): ``MultiWorkerMirroredStrategy`` when
``TF_CONFIG`` names a cluster, ``MirroredStrategy`` over several local GPUs, else the
default; batch norm is synchronised across replicas when there are several, and only the
chief writes into the run folder.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._files import atomic_path
from .errors import InputError, UsageError, clip, listed
from .spec_types import Spec, Train

INFO_ENTRY = "vggspec.json"
STATE_FILE = "state.json"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                   "images_per_second", "seconds")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``epochs_done`` epochs are saved in ``run`` and
    ``--resume`` continues from there."""

    def __init__(self, message: str, epochs_done: int, run: Path):
        super().__init__(message)
        self.message, self.epochs_done, self.run = message, epochs_done, run

    def __str__(self) -> str:
        return self.message


@dataclass
class RunResult:
    """What a training run left: its folder, the per-epoch history, the best epoch's
    figures (``metrics``: see vggspec.evaluation.metrics; {} on workers other than the
    chief), the images skipped, and the trained model as the last epoch left it."""

    run: Path
    history: list[dict]
    metrics: dict
    best_epoch: int
    failed: list[str] = field(default_factory=list)
    class_names: tuple[str, ...] = ()
    model: Any = field(default=None, repr=False)


# --- settings -------------------------------------------------------------------------

def settings_for(spec: Spec, **overrides) -> Train:
    """The spec's training settings (``Train()`` when it has none) with every override
    that is not None applied (``epochs=5``; ``augment`` takes an Augment)."""
    base = spec.train or Train()
    given = {key: value for key, value in overrides.items() if value is not None}
    unknown = set(given) - set(Train.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown training settings: {', '.join(sorted(unknown))}")
    return dataclasses.replace(base, **given)


def check_trainable(spec: Spec, classes: int | None, data: str, classes_from_data: bool
                    ) -> Spec:
    """The spec to train for ``classes`` classes (from the data folder). Refused in one
    line at the spec's file:line:path: SpecError when it has no predictions layer or an
    open input size; InputError when its class count differs from the folder's (unless
    ``classes_from_data``, which sets the head's classes from the data)."""
    from .errors import SpecError

    if None in spec.input_shape[:2]:
        raise SpecError([spec.issue("$.input.shape", "training needs a fixed input size, "
                                    f"got {_shape(spec.input_shape)}")])
    head = spec.head
    if head.type == "none":
        raise SpecError([spec.issue("$.head.type", "head type none has no predictions "
                                    "layer to train; use dense, global_avg or global_max "
                                    "with classes")])
    if classes is None:
        return spec
    if head.classes is None or classes_from_data:
        return dataclasses.replace(spec, head=dataclasses.replace(head, classes=classes))
    if head.classes != classes:
        # The data and the spec disagree: an input error (exit 2), said at the spec's line.
        path = "$.head.classes" if "$.head.classes" in spec.nodes else "$.head"
        raise InputError(str(spec.issue(path, (
            f"the spec has {head.classes} classes, {data} has {classes} class folders; "
            f"set head.classes: {classes}, or pass --classes-from-data"))))
    return spec


def _shape(shape) -> str:
    return "x".join("?" if size is None else str(size) for size in shape)


# --- the model ------------------------------------------------------------------------

def _optimizer(settings: Train, steps_per_epoch: int, epochs: int):
    import keras

    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, steps_per_epoch * settings.warmup_epochs)
    rate = settings.learning_rate
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else rate, decay_steps=max(1, total - warmup),
        alpha=1.0 if settings.schedule == "constant" else 0.0,
        warmup_target=rate if warmup else None, warmup_steps=warmup)
    decay = settings.weight_decay or None
    if settings.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=settings.momentum,
                                         weight_decay=decay)
    elif settings.optimizer == "adam":
        # Keras' Adam decays decoupled as AdamW does: "adam" means no decay at all.
        optimizer = keras.optimizers.Adam(schedule)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay)
    # Decay the kernels only: biases and batch norm's scale and offset stay free.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _loss(spec: Spec, settings: Train):
    import keras

    if spec.head.activation == "sigmoid":
        return keras.losses.BinaryCrossentropy(label_smoothing=settings.label_smoothing)
    return keras.losses.CategoricalCrossentropy(
        from_logits=spec.head.activation == "linear",
        label_smoothing=settings.label_smoothing)


def _reseed_dropout(model, seed: int, epoch: int) -> None:
    """Dropout's generators start each epoch from (seed, epoch): their state is not in
    a saved model, and a resumed run must draw what an uninterrupted one would."""
    for index, layer in enumerate(model.layers):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            dtype = generator.state.dtype
            generator.state.assign(np.array([seed + index, epoch << 20]).astype(dtype))


# --- what a run writes ----------------------------------------------------------------

def save_with_info(model, path: str | os.PathLike, info: dict) -> Path:
    """``model.save`` to ``path``, atomically, with ``info`` stored in the archive as
    vggspec.json (plain ``keras.models.load_model`` ignores it)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        model.save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(INFO_ENTRY, json.dumps(info, indent=1))
    return path


def model_info(path: str | os.PathLike) -> dict:
    """The vggspec.json a trained model carries (class names, preprocessing, resize,
    spec); {} for a .keras file made elsewhere. Raises InputError for a file that is
    not a .keras archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            if INFO_ENTRY not in archive.namelist():
                return {}
            if archive.getinfo(INFO_ENTRY).file_size > 1 << 22:
                raise InputError(f"{path}: its {INFO_ENTRY} is too large")
            info = json.loads(archive.read(INFO_ENTRY))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, NotImplementedError,
            RuntimeError, EOFError) as error:
        # NotImplementedError: an unknown compression; RuntimeError: an encrypted entry.
        raise InputError(f"{path}: not a .keras model file ({clip(str(error), 120)})") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InputError(f"{path}: its {INFO_ENTRY} is not JSON") from None
    return info if isinstance(info, dict) else {}


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _write_history(path: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: _csv_value(row.get(key)) for key in HISTORY_COLUMNS})
    _write_text(path, buffer.getvalue())


def _csv_value(value):
    if value is None:
        return ""
    return value if isinstance(value, int) else f"{value:.6g}"


def _spec_yaml(spec: Spec) -> str:
    import yaml

    header = "# The spec this run trained, every default written out (vggspec train)\n"
    return header + yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None)


def _fingerprint(spec: Spec) -> dict:
    """What a resumed run must share with the run it continues: everything but the
    number of epochs."""
    resolved = spec.to_dict()
    resolved.get("train", {}).pop("epochs", None)
    resolved.pop("description", None)
    return resolved


# --- the run --------------------------------------------------------------------------

def _check_run_folder(run: Path, resume: bool) -> dict | None:
    """The saved state for ``resume``; refuses a run folder that holds files when not
    resuming, and a missing or unfinished state when resuming."""
    if resume:
        state_path = run / STATE_FILE
        if not state_path.is_file() or not (run / "last.keras").is_file():
            raise InputError(f"{run}: nothing to resume: no {STATE_FILE} and last.keras "
                             f"(a run saves them after its first epoch)")
        try:
            if state_path.stat().st_size > 1 << 24:
                raise ValueError("larger than 16 MiB")
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as error:
            raise InputError(f"{state_path}: cannot read the run's state: "
                             f"{clip(str(error), 120)}") from None
        _check_state(state_path, state)
        if not (run / "best.keras").is_file():
            raise InputError(f"{run}: best.keras is missing; the run cannot be resumed")
        saved = model_info(run / "last.keras").get("epoch")
        if saved != state["epochs_done"]:
            raise InputError(f"{run}: last.keras holds epoch {saved} but {STATE_FILE} says "
                             f"{state['epochs_done']}: the run stopped while writing an "
                             f"epoch's files; it cannot be resumed exactly")
        return state
    if run.exists():
        if not run.is_dir():
            raise InputError(f"{run}: exists and is not a folder")
        if (run / STATE_FILE).exists():
            raise InputError(f"{run}: the folder holds an earlier run; pass --resume to "
                             f"continue it, or choose another --out")
        inside = sorted(entry.name for entry in os.scandir(run))
        if inside:
            raise InputError(f"{run}: the folder is not empty ({listed(inside)}) and holds "
                             f"no run; give --out a new or empty folder")
    return None


def _check_state(path: Path, state) -> None:
    """Refuse a state.json that is not the shape this module writes: a run folder from
    elsewhere may hold anything."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)

    history = state.get("history") if isinstance(state, dict) else None
    sound = (isinstance(state, dict) and isinstance(history, list)
             and isinstance(state.get("epochs_done"), int)
             and not isinstance(state.get("epochs_done"), bool)
             and 0 < state["epochs_done"] == len(history)
             and number(state.get("best")) and isinstance(state.get("best_epoch"), int)
             and all(isinstance(row, dict) and all(number(v) for v in row.values())
                     and row.get("epoch") == index + 1
                     for index, row in enumerate(history))
             and isinstance(state.get("class_names"), list)
             and isinstance(state.get("spec"), dict))
    if not sound:
        raise InputError(f"{path}: not a state vggspec train wrote (epochs_done, best, "
                         f"history, class_names, spec); the run cannot be resumed")


@dataclass
class Prepared:
    """A training run checked and ready: everything that can be wrong with the spec,
    the folders and the run folder has been found before TensorFlow starts."""

    spec: Spec
    settings: Train
    run: Path
    class_names: tuple[str, ...]
    train_files: list[Path]
    train_labels: np.ndarray
    val_files: list[Path]
    val_labels: np.ndarray
    state: dict | None
    weights: str | os.PathLike | None = None
    partial: bool = False
    data: str = ""
    max_weight_bytes: int | None = None


def prepare(spec_or_path: Any, data: str | os.PathLike, out: str | os.PathLike, *,
            val: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
            partial: bool = False, resume: bool = False, classes_from_data: bool = False,
            preprocess_from_weights: str | None = None, max_cache_bytes: int | None = None,
            max_weight_bytes: int | None = None, **overrides) -> Prepared:
    """Check a training run without starting TensorFlow (see ``train`` for the
    arguments); raises what ``train`` raises before training."""
    from .builder import as_plan
    from .data import check_cache, scan_folder, split
    from .features import check_preprocessing, default_preprocessing
    from .plan import DEFAULT_MAX_WEIGHT_BYTES

    from .distribute import is_chief

    run = Path(out)
    # Workers other than the chief write nothing into the run folder, so they do not
    # check it either (on a shared disk the chief may be filling it already).
    state = _check_run_folder(run, resume) if resume or is_chief() else None
    if is_chief():
        _check_writable(run)
    weight_limit = DEFAULT_MAX_WEIGHT_BYTES if max_weight_bytes is None else max_weight_bytes
    spec = as_plan(spec_or_path, weight_limit or None).spec
    settings = settings_for(spec, **overrides)
    folder = scan_folder(data)
    spec = check_trainable(spec, len(folder.class_names), str(data), classes_from_data)
    channels = spec.input_shape[2]
    preprocess = settings.preprocess or preprocess_from_weights or \
        default_preprocessing(channels)
    check_preprocessing(preprocess, channels)
    settings = dataclasses.replace(settings, preprocess=preprocess)
    spec = dataclasses.replace(spec, train=settings)
    labels = np.asarray(folder.labels)
    if val is not None:
        val_folder = scan_folder(val, "validation folder")
        if val_folder.class_names != folder.class_names:
            raise InputError(f"{val}: its class folders differ from {data}'s: "
                             + _difference(val_folder.class_names, folder.class_names,
                                           theirs="training classes"))
        train_files, train_labels = list(folder.files), labels
        val_files, val_labels = list(val_folder.files), np.asarray(val_folder.labels)
    else:
        train_index, val_index = split(folder, settings.val_split, settings.seed)
        train_files = [folder.files[i] for i in train_index]
        val_files = [folder.files[i] for i in val_index]
        train_labels, val_labels = labels[train_index], labels[val_index]
    if state is not None:
        if state.get("spec") != _fingerprint(spec):
            raise InputError(f"{run}: was made with another spec or other training "
                             f"settings (only epochs may change on --resume); compare "
                             f"{run}/spec.yaml")
        if state.get("class_names") != list(folder.class_names):
            raise InputError(f"{run}: was trained on other classes: "
                             + _difference(folder.class_names,
                                           _names(state.get("class_names")),
                                           theirs="run's classes"))
        if int(state.get("epochs_done", 0)) >= settings.epochs:
            raise UsageError(f"{run}: already trained for {state['epochs_done']} epochs; "
                             f"pass --epochs with more to continue it")
    size = spec.input_shape[:2]
    # None: the default limit; 0: no limit.
    check_cache(data, len(train_files) + len(val_files), size, channels, max_cache_bytes,
                "; decoding while streaming is not built yet")
    return Prepared(spec, settings, run, folder.class_names, train_files, train_labels,
                    val_files, val_labels, state, weights, partial, str(data),
                    weight_limit or None)


def _check_writable(run: Path) -> None:
    """The run folder, or the nearest folder above it that exists, can be written."""
    existing = run
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{run}: cannot be written ({existing} is not a writable folder)")


def train(spec_or_path: Any, data: str | os.PathLike, out: str | os.PathLike, *,
          val: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
          partial: bool = False, resume: bool = False, classes_from_data: bool = False,
          preprocess_from_weights: str | None = None,
          log: Callable[[str], None] | None = None, progress_bar: bool = False,
          max_cache_bytes: int | None = None, max_weight_bytes: int | None = None,
          **overrides) -> RunResult:
    """Train the network a spec describes on a folder of class folders, writing the run
    into ``out`` (see the module's docstring for what it holds).

    ``overrides`` are training settings over the spec's ``train`` section (``epochs``,
    ``batch_size``, ``seed``, ``val_split``, ``preprocess``, ...). ``val``: a validation
    folder with the same classes (else ``val_split`` of each class is held out).
    ``weights`` and ``partial`` are build_model's; ``preprocess_from_weights`` is the
    preprocessing published weights expect (used unless ``preprocess`` is given).
    ``resume``: continue the run in ``out`` from its last completed epoch (the spec and
    settings must be the ones it was made with; ``epochs`` may grow).
    ``classes_from_data``: set the head's classes from the folder. ``log`` receives one
    line per epoch and notes (default: print). ``max_cache_bytes``: the most the decoded
    images may take (default 4 GiB; 0 for no limit); ``max_weight_bytes``: the spec's
    float32 weight limit (default 4 GiB; 0 for none).

    Raises SpecError for a spec that cannot be trained on the data, InputError for bad
    folders (before training starts), TrainingInterrupted on Ctrl-C.

    >>> result = train("archs/vgg11.yaml", "digits/", "runs/digits", epochs=5)  # doctest: +SKIP
    """
    prepared = prepare(spec_or_path, data, out, val=val, weights=weights, partial=partial,
                       resume=resume, classes_from_data=classes_from_data,
                       preprocess_from_weights=preprocess_from_weights,
                       max_cache_bytes=max_cache_bytes, max_weight_bytes=max_weight_bytes,
                       **overrides)
    return run_training(prepared, log=log, progress_bar=progress_bar)


def run_training(prepared: Prepared, *, log: Callable[[str], None] | None = None,
                 progress_bar: bool = False) -> RunResult:
    """Decode the images and train (see ``train``); ``prepared`` comes from ``prepare``."""
    from . import data as data_module
    from .data import decode

    from .backends import precision_policy, quiet_keras
    from .distribute import describe, is_chief, multi_worker_fit, strategy

    quiet_keras()
    # First: a multi-worker strategy must exist before TensorFlow runs anything else.
    distribution = strategy()
    chief = is_chief()
    say = (log or (lambda line: print(line, flush=True))) if chief else (lambda line: None)
    spec, settings, run, state = prepared.spec, prepared.settings, prepared.run, \
        prepared.state
    names = prepared.class_names
    classes, channels, size = len(names), spec.input_shape[2], spec.input_shape[:2]
    preprocess = settings.preprocess
    if chief:
        run.mkdir(parents=True, exist_ok=True)
    say(f"devices: {describe(distribution)}")
    train_images = decode(prepared.train_files, channels, size, settings.resize)
    val_images = decode(prepared.val_files, channels, size, settings.resize)
    failed = data_module.describe_failures(train_images.failed + val_images.failed)
    unreadable = f" ({len(failed):,} unreadable, skipped)" if failed else ""
    say(f"data: {len(train_images.kept):,} training and {len(val_images.kept):,} "
        f"validation images{unreadable}, {classes} classes; preprocessing {preprocess}, "
        f"{settings.resize}")
    train_y = prepared.train_labels[train_images.kept]
    val_y = prepared.val_labels[val_images.kept]
    if len(train_y) == 0:
        raise InputError(f"{prepared.data}: none of the training images could be read")

    import keras
    from .backends import quiet_tensorflow

    tf = quiet_tensorflow()

    replicas = distribution.num_replicas_in_sync
    keras.utils.set_random_seed(settings.seed)
    epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False)
    steps = -(-len(train_y) // settings.batch_size)
    training = data_module.batches(train_images.images, train_y, classes,
                                   settings.batch_size, preprocess, seed=settings.seed,
                                   epoch=epoch_variable, augment=settings.augment)
    validation = data_module.batches(val_images.images, val_y, classes,
                                     settings.batch_size, preprocess) if len(val_y) else None
    epochs = settings.epochs
    initial_epoch = int(state["epochs_done"]) if state else 0
    with distribution.scope(), precision_policy(settings.precision):
        model = _build(spec, prepared.weights, prepared.partial, replicas,
                       prepared.max_weight_bytes)
        model.compile(optimizer=_optimizer(settings, steps, epochs), loss=_loss(spec, settings),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
        if state is not None:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(run / "last.keras")
    info = {"class_names": list(names), "preprocess": preprocess, "resize": settings.resize,
            "input_shape": list(spec.input_shape), "spec": spec.to_dict()}
    history = list(state["history"]) if state else []
    recorder = _recorder(run, spec, info, history, epoch_variable, settings.seed, len(train_y),
                         epochs, chief, say, state)
    callbacks: list = [recorder]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run / "logs"),
                                                     write_graph=False))
    try:
        with multi_worker_fit(distribution):
            model.fit(training, validation_data=validation, epochs=epochs,
                      initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                      verbose=1 if progress_bar and chief else 0)
    except KeyboardInterrupt:
        done = len(recorder.history)
        where = (f"{run} holds epochs 1-{done}; add --resume to continue from there"
                 if done else "no epoch finished, nothing to resume")
        raise TrainingInterrupted(f"interrupted in epoch {done + 1}: {where}", done,
                                  run) from None
    except tf.errors.ResourceExhaustedError:
        raise InputError(f"out of memory training {spec.name} at batch size "
                         f"{settings.batch_size} on {describe(distribution)}; lower "
                         f"--batch-size") from None
    except tf.errors.UnavailableError as error:
        # Another worker stopped (Ctrl-C, a crash): the collective ops give up on it.
        raise InputError(f"a worker of the cluster stopped answering, so this one stops "
                         f"too: {clip(str(error).splitlines()[0], 200)}") from None
    best_epoch = recorder.best_epoch
    metrics: dict = {}
    if chief:
        from .evaluation import metrics as figures, write_confusion

        best = _load_trained(run / "best.keras", info)
        images, labels = (val_images.images, val_y) if len(val_y) else \
            (train_images.images, train_y)
        probabilities = predict(best, images, preprocess, settings.batch_size)
        metrics = figures(labels, probabilities, list(names))
        metrics["epoch"] = best_epoch
        metrics["set"] = "validation" if len(val_y) else "training"
        _write_text(run / "metrics.json", json.dumps(metrics, indent=1) + "\n")
        write_confusion(np.asarray(metrics["confusion"]), list(names), run / "confusion.png",
                        title=f"{spec.name}, epoch {best_epoch}, {metrics['set']} images")
    return RunResult(run, recorder.history, metrics, best_epoch, failed, names, model)


def _names(value) -> list[str]:
    return [str(name) for name in value] if isinstance(value, list) else []


def _difference(have, want, mine: str = "folders", theirs: str = "classes") -> str:
    """What differs between two lists of class names, in words: what ``have`` has that
    ``want`` lacks, and the reverse."""
    extra = [name for name in have if name not in want]
    missing = [name for name in want if name not in have]
    parts = []
    if extra:
        parts.append(f"{mine} not among the {theirs}: {listed(extra)}")
    if missing:
        parts.append(f"{theirs} with no folder: {listed(missing)}")
    return "; ".join(parts) or "the same names in another order"


def _build(spec: Spec, weights, partial: bool, replicas: int,
           max_weight_bytes: int | None = None):
    from .builder import build_model

    return build_model(spec, weights=weights, partial=partial,
                       max_weight_bytes=max_weight_bytes,
                       synchronized_batch_norm=replicas > 1)


def predict(model, images: np.ndarray, preprocess: str, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for uint8 ``images`` (N, H, W, C) prepared with
    ``preprocess``, batch by batch. Raises InputError when the model's outputs are not
    finite (a run whose loss diverged)."""
    from .data import batches

    dataset = batches(images, np.zeros(len(images), np.int64), 1, batch_size, preprocess)
    # numpy batches: a jitted JAX or a torch model takes no TensorFlow tensors.
    outputs = [np.asarray(model.predict_on_batch(x)) for x, _ in dataset.as_numpy_iterator()]
    probabilities = np.concatenate(outputs).astype(np.float64)
    if not np.isfinite(probabilities).all():
        raise InputError(f"{model.name}: the model's outputs are not finite numbers: training "
                         f"diverged; try a lower learning rate")
    from .predict import probabilities_of

    return probabilities_of(model, probabilities)


def _recorder(*args):
    """A keras Callback (keras is imported only when training) that keeps the history,
    writes the run's files after each epoch on the chief, and prints one line."""
    import keras

    class Recorder(_RecorderMixin, keras.callbacks.Callback):
        pass

    recorder = Recorder()
    recorder.setup(*args)
    return recorder


class _RecorderMixin:
    def setup(self, run, spec, info, history, epoch_variable, seed, images, epochs, chief,
              say, state):
        self.run, self.spec, self.info, self.history = run, spec, info, history
        self.epoch_variable, self.seed, self.images = epoch_variable, seed, images
        self.epochs, self.chief, self.say = epochs, chief, say
        self.best = state["best"] if state else -math.inf
        self.best_epoch = state["best_epoch"] if state else 0
        self.monitor = "val_accuracy"

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_variable.assign(epoch)
        _reseed_dropout(self.model, self.seed, epoch)
        self.started = time.perf_counter()
        self.testing = 0.0

    def on_test_begin(self, logs=None):
        self.test_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self.testing += time.perf_counter() - self.test_started

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.started
        logs = {key: float(value) for key, value in (logs or {}).items()}
        rate = float(np.asarray(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, **{k: v for k, v in logs.items() if k != "learning_rate"},
               "learning_rate": rate,
               "images_per_second": self.images / max(elapsed - self.testing, 1e-9),
               "seconds": elapsed}
        with _interrupts_deferred():
            # An epoch counts once its files are all written: Ctrl-C while they are
            # leaves the files, the state and the message agreeing.
            self.history.append(row)
            monitored = row.get(self.monitor, row.get("accuracy", 0.0))
            improved = monitored > self.best
            if improved:
                self.best, self.best_epoch = monitored, epoch + 1
            if self.chief:
                self._write(improved)
        self.say(_epoch_line(row, self.epochs) + (" *" if improved else ""))

    def _write(self, improved: bool) -> None:
        from .evaluation import write_curves

        run = self.run
        info = {**self.info, "epoch": len(self.history)}
        if improved:
            save_with_info(self.model, run / "best.keras", info)
        save_with_info(self.model, run / "last.keras", info)
        _write_history(run / "history.csv", self.history)
        write_curves(self.history, run / "curves.png", title=self.spec.name)
        if not (run / "spec.yaml").exists():
            _write_text(run / "spec.yaml", _spec_yaml(self.spec))
        state = {"epochs_done": len(self.history), "best": self.best,
                 "best_epoch": self.best_epoch, "history": self.history,
                 "class_names": self.info["class_names"], "spec": _fingerprint(self.spec)}
        # Last, so that a crash between files leaves the state of the epoch before.
        _write_text(run / STATE_FILE, json.dumps(state, indent=1) + "\n")


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold Ctrl-C (SIGINT) until the block ends, then raise it: the files of one epoch
    are written all or none. Only the main thread can hold signals; elsewhere the block
    runs as it is."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _epoch_line(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in row:
            parts.append(f"{key} {row[key]:.4f}")
    parts.append(f"{row['images_per_second']:,.0f} images/s")
    parts.append(f"{row['seconds']:.1f} s")
    return "  ".join(parts)


# --- evaluate -------------------------------------------------------------------------

def trained_model_file(run_or_model: str | os.PathLike, other: str = "") -> Path:
    """The model file a run folder (its best.keras) or a .keras path names; InputError
    when there is none. ``other`` names what else the command takes, for the message."""
    path = Path(run_or_model)
    if path.is_dir():
        path = path / "best.keras"
    if not path.is_file():
        raise InputError(f"{path}: no such model file (give {other}a run folder or a .keras "
                         f"file written by vggspec train)")
    return path


def check_evaluation(run_or_model: str | os.PathLike, data: str | os.PathLike,
                     out: str | os.PathLike | None = None,
                     max_cache_bytes: int | None = None):
    """(model path, its vggspec.json, the ImageFolder) for ``evaluate``, checked without
    TensorFlow: the model file and what it carries, the data's classes against the
    model's, the output folder, and the memory the decoded images need."""
    from .data import check_cache, scan_folder

    path = trained_model_file(run_or_model)
    info = _checked_info(path, model_info(path))
    names = info["class_names"]
    folder = scan_folder(data)
    if list(folder.class_names) != names:
        raise InputError(f"{data}: its class folders differ from the model's classes: "
                         + _difference(folder.class_names, names, theirs="model's classes"))
    if out is not None:
        from ._files import check_output_dir

        check_output_dir(out)
    shape = info["input_shape"]
    check_cache(data, len(folder.files), tuple(shape[:2]), shape[2], max_cache_bytes)
    return path, info, folder


def evaluate(run_or_model: str | os.PathLike, data: str | os.PathLike, *,
             batch_size: int = 64, out: str | os.PathLike | None = None,
             max_cache_bytes: int | None = None) -> dict:
    """Accuracy, top-5 (above five classes), per-class precision and recall and the
    confusion matrix of a trained model (a run folder's best.keras, or a .keras file
    written by vggspec train) on a folder of class folders; with ``out``, writes
    metrics.json and confusion.png there. Raises InputError for a model without
    vggspec's class names, one that does not match what it carries, data whose class
    folders differ from the model's, or images that cannot be read at all."""
    from .data import decode
    from .evaluation import metrics as figures, write_confusion

    path, info, folder = check_evaluation(run_or_model, data, out, max_cache_bytes)
    names, shape = info["class_names"], info["input_shape"]
    decoded = decode(list(folder.files), shape[2], tuple(shape[:2]), info["resize"])
    if not len(decoded.kept):
        raise InputError(f"{data}: none of the images could be read")
    model = _load_trained(path, info)
    labels = np.asarray(folder.labels)[decoded.kept]
    probabilities = predict(model, decoded.images, info["preprocess"], batch_size)
    result = figures(labels, probabilities, names)
    result["failed"] = [reason for _, reason in decoded.failed]
    if out is not None:
        _write_text(Path(out) / "metrics.json", json.dumps(result, indent=1) + "\n")
        write_confusion(np.asarray(result["confusion"]), names, Path(out) / "confusion.png",
                        title=f"{path.name} on {Path(data).name}")
    return result


def _load_trained(path: Path, info: dict):
    """The model in ``path``, refused in one line if Keras cannot load it or its input
    and output do not fit what its vggspec.json says."""
    import keras

    from . import layers  # noqa: F401  registers LRN for load_model

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001  Keras raises many kinds for a bad archive
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{path}: Keras cannot load the model: {clip(reason, 200)}") from None
    inputs, outputs = tuple(model.input_shape[1:]), model.output_shape[-1]
    if inputs != tuple(info["input_shape"]) or outputs != len(info["class_names"]):
        raise InputError(f"{path}: the model takes {inputs} and gives {outputs} outputs, but "
                         f"its {INFO_ENTRY} says {tuple(info['input_shape'])} and "
                         f"{len(info['class_names'])} classes")
    return model


def _checked_info(path: Path, info: dict) -> dict:
    """``info`` (a model's vggspec.json) if it says what evaluate needs in the forms
    train writes; a file from elsewhere may say anything."""
    from .features import PREPROCESSING, RESIZE_POLICIES

    names = info.get("class_names")
    if not isinstance(names, list) or not names:
        raise InputError(f"{path}: has no class names: not a model written by vggspec train")
    shape = info.get("input_shape")
    sound = (all(isinstance(name, str) for name in names)
             and isinstance(shape, list) and len(shape) == 3
             and all(isinstance(size, int) and not isinstance(size, bool)
                     and 1 <= size <= 8192 for size in shape) and shape[2] <= 4
             and info.get("preprocess") in PREPROCESSING
             and info.get("resize") in RESIZE_POLICIES)
    if not sound:
        raise InputError(f"{path}: its {INFO_ENTRY} is damaged (class names, input shape, "
                         f"preprocessing or resize policy)")
    return info
