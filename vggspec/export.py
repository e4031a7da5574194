"""Exporting a built model for inference elsewhere, through Keras' own ``model.export``.

    keras.Model --export--> SavedModel folder | .onnx file | .tflite file

Each format is one row of FORMATS: Keras' name for it, what its path must look like and
the Python packages its converter needs beyond TensorFlow. Keras converts; this module
only checks the path first, checks the converter is there, and writes atomically: the
export goes into a hidden sibling of the output (``.<name>.tmp-<hex>``) that is renamed
into place when it is complete, so an error or Ctrl-C leaves nothing behind.

An ONNX file is checked with ``onnx.checker`` before it is renamed into place: tf2onnx
only logs the TensorFlow ops it cannot convert, and writes a file that no runtime opens.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ._files import atomic_path, check_output_dir, check_output_file
from .errors import InputError, UsageError, clip, printable

# ".<name>.tmp-<8 hex>" beside a SavedModel folder: 14 more bytes than its name.
_TEMPORARY_EXTRA = 14
_NAME_MAX = 255
# Why a TensorFlow op tf2onnx cannot convert is there, in the user's words.
_OP_CAUSES = {"Erfc": "the gelu activation"}
# What tf2onnx logs, read by _tf2onnx_log: an op it cannot convert (it goes on and writes
# a file no runtime opens), and each optimizer pass, at its own VERBOSE level.
_UNSUPPORTED_OP = "Tensorflow op [%s: %s] is not supported"
_OPTIMIZER_PASS = "Apply %s"
_TF2ONNX_VERBOSE = 15
# ...and collects garbage before each pass for models with at least this many bytes of
# weights; below it the copies are small and the collections (about 0.1 s each, some 40
# of them) would cost more than they save.
_COLLECT_FROM_BYTES = 32 << 20


@dataclass(frozen=True)
class ExportFormat:
    """One export format: ``keras_name`` is model.export's ``format``; ``suffix`` the
    file ending (None: a folder); ``packages`` the modules the converter imports beyond
    TensorFlow, as (import name, pip name); ``description`` is what --format's help says
    of it; ``max_bytes`` the weights one file can hold, and ``limit_reason`` why."""

    name: str
    keras_name: str
    suffix: str | None
    packages: tuple[tuple[str, str], ...] = ()
    description: str = ""
    max_bytes: int | None = None
    limit_reason: str = ""


FORMATS = {
    "savedmodel": ExportFormat("savedmodel", "tf_saved_model", None, (),
                               "a folder for tf.saved_model.load and TF Serving (endpoint "
                               "serve)"),
    "onnx": ExportFormat("onnx", "onnx", ".onnx", (("tf2onnx", "tf2onnx"), ("onnx", "onnx")),
                         "a .onnx file for onnxruntime, converted by tf2onnx",
                         max_bytes=2 ** 31,
                         limit_reason="an ONNX file holds less than 2 GiB (protobuf's "
                                      "limit; Keras' exporter writes no external data)"),
    "litert": ExportFormat("litert", "litert", ".tflite", (),
                           "a .tflite file for the LiteRT interpreter, converted by "
                           "TensorFlow's own converter"),
}


def export_format(name: str) -> ExportFormat:
    """The row of FORMATS called ``name``; UsageError for any other name."""
    if name not in FORMATS:
        raise UsageError(f"unknown export format {printable(repr(name))}: use "
                         f"{', '.join(FORMATS)}")
    return FORMATS[name]


def check_export_path(path: str | os.PathLike, format: str) -> Path:
    """Refuse, before any work, an output path the format cannot be written to.

    A SavedModel is a folder that must not exist yet or be empty, in a writable folder;
    ONNX and LiteRT are files ending .onnx and .tflite (an existing file is replaced).
    Raises UsageError for an unknown format, InputError for a path that cannot be used.

    >>> check_export_path("model.tflite", "litert")
    PosixPath('model.tflite')
    >>> check_export_path("model", "onnx")
    Traceback (most recent call last):
    ...
    vggspec.errors.InputError: model: the file name must end in .onnx
    """
    chosen = export_format(format)
    if chosen.suffix:
        return check_output_file(path, (chosen.suffix,))
    return _check_output_folder(Path(path))


def _check_output_folder(path: Path) -> Path:
    shown = str(path)  # InputError escapes what it prints
    if "\0" in str(path):
        raise InputError(f"{shown}: a folder name cannot contain a NUL character")
    if path.name in ("", ".", ".."):
        raise InputError(f"{shown}: give the SavedModel folder a name of its own, such as "
                         f"{os.path.join(str(path), 'model')}")
    other = next((row for row in FORMATS.values()
                  if row.suffix and path.name.lower().endswith(row.suffix)), None)
    if other:
        raise InputError(f"{shown}: a SavedModel is a folder, not a {other.suffix} file "
                         f"(--format {other.name} writes one)")
    if len(os.fsencode(path.name)) + _TEMPORARY_EXTRA > _NAME_MAX:
        raise InputError(f"{shown}: the folder name is too long (at most "
                         f"{_NAME_MAX - _TEMPORARY_EXTRA} bytes)")
    try:
        if path.is_symlink():
            raise InputError(f"{shown}: is a link; give the folder's own path")
        if path.exists():
            if not path.is_dir():
                raise InputError(f"{shown}: is a file; a SavedModel is written into a new "
                                 f"or empty folder")
            with os.scandir(path) as entries:
                if next(entries, None) is not None:
                    raise InputError(f"{shown}: the folder is not empty; a SavedModel is "
                                     f"written into a new or empty folder")
    except OSError as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{shown}: cannot use the folder: {error.strerror or error}") \
            from None
    check_output_dir(path.parent, create=False)
    return path


def check_converter(format: str, load: bool = True) -> None:
    """Refuse a format whose converter is not installed, naming the package to install
    (one line). With ``load``, imports the converter's packages too (tf2onnx imports
    TensorFlow), so one that is there but broken is refused as well."""
    chosen = export_format(format)
    for module, package in chosen.packages:
        try:
            _find(module, load)
        except ImportError:
            raise UsageError(f"--format {chosen.name} needs the {package} package, which is "
                             f"not installed (pip install {package})") from None
        except Exception as error:  # a version that does not fit this TensorFlow or numpy
            raise UsageError(f"--format {chosen.name} needs the {package} package, which "
                             f"fails to import: {clip(f'{type(error).__name__}: {error}', 200)}"
                             ) from None


def _find(module: str, load: bool) -> None:
    """Import ``module``, or only look for it; ImportError when it is not there."""
    import importlib
    import importlib.util

    if load:
        importlib.import_module(module)
        return
    try:
        found = importlib.util.find_spec(module)
    except (ValueError, AttributeError):  # None in sys.modules: import blocked
        found = None
    if found is None:
        raise ImportError(module)


def check_exportable(model_or_plan, format: str = "savedmodel") -> None:
    """Refuse, before the work, a model the format cannot hold or Keras cannot trace:
    - any format: an open input size (null) with an adaptive pool, which Keras 3.15
      computes from a fixed input size;
    - ONNX: weights of 2 GiB or more, protobuf's limit for one file (Keras' exporter
      does not use ONNX's external-data layout, and TensorFlow cannot even freeze a
      single weight that large).
    Takes a keras.Model or a vggspec Plan (so the CLI can check before building).
    Raises UsageError."""
    chosen = export_format(format)
    if hasattr(model_or_plan, "spec"):  # a Plan
        shape = model_or_plan.layers[0].config["shape"]
        adaptive = [layer.name for layer in model_or_plan.layers
                    if layer.kind == "AdaptiveAveragePooling2D"]
        weight_bytes = model_or_plan.weight_bytes
    else:
        shape = model_or_plan.input_shape[1:]
        adaptive = [layer.name for layer in model_or_plan.layers
                    if type(layer).__name__ == "AdaptiveAveragePooling2D"]
        weight_bytes = 4 * model_or_plan.count_params()
    if adaptive and None in tuple(shape)[:2]:
        raise UsageError(f"{adaptive[0]}: an open input size (null) cannot be exported with "
                         f"adaptive_pool, which Keras computes from a fixed size: give "
                         f"input.shape a height and width")
    if chosen.max_bytes is not None and weight_bytes >= chosen.max_bytes:
        raise UsageError(f"--format {chosen.name}: the weights need "
                         f"{weight_bytes / 2 ** 30:.2f} GiB; {chosen.limit_reason}")


def export_model(model, path: str | os.PathLike, format: str = "savedmodel") -> Path:
    """Export ``model`` for inference with Keras' ``model.export``, atomically: the
    SavedModel folder or the .onnx or .tflite file appears whole or not at all, even on
    Ctrl-C. Returns the path written.

    ``format`` is a name in FORMATS: ``savedmodel`` (reload with
    ``tf.saved_model.load(path).serve(x)``), ``onnx`` (needs tf2onnx; run with
    onnxruntime) or ``litert`` (run with ai_edge_litert's Interpreter). The batch size
    stays open in all three. Raises InputError for a path that cannot be written, and
    UsageError for an unknown format, a converter that is not installed, or a model the
    converter cannot convert (nothing is written then).

    >>> model = build_model(vggspec.spec_from_text(
    ...     "name: t\\ninput: {shape: [32, 32, 3]}\\nblocks: [[8, max]]\\nhead: {type: none}"))
    >>> export_model(model, "t.tflite", "litert")
    PosixPath('t.tflite')
    """
    chosen = export_format(format)
    path = check_export_path(path, chosen.name)
    check_converter(chosen.name)
    check_exportable(model, chosen.name)
    import warnings

    import keras

    # The signature Keras would infer for a functional model, given outright: its ONNX
    # exporter otherwise refuses a model that was built but never called.
    signature = [keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32",
                                 name=model.inputs[0].name)]
    writing = _atomic_folder(path) if chosen.suffix is None else atomic_path(path)
    try:
        with writing as temporary:
            with _tf2onnx_log(collect=4 * model.count_params() >= _COLLECT_FROM_BYTES) \
                    if chosen.name == "onnx" else contextlib.nullcontext([]) as unsupported, \
                    warnings.catch_warnings():
                # Keras' own patch of tf2onnx for numpy 2 trips numpy's warning about it.
                warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)
                model.export(str(temporary), format=chosen.keras_name, verbose=False,
                             input_signature=signature)
            if chosen.name == "onnx":
                _check_onnx(temporary, path, unsupported)
    except OSError as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path}: cannot write: {error.strerror or error}") from None
    return path


@contextlib.contextmanager
def _atomic_folder(path: Path):
    """atomic_path for a folder: a hidden sibling, renamed onto ``path`` (which may be an
    empty folder) when complete, removed on any error or Ctrl-C."""
    import secrets
    import shutil

    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


@contextlib.contextmanager
def _tf2onnx_log(collect: bool):
    """tf2onnx's log, kept from the terminal for the length of an export and read: the
    (node, op) pairs it logs as unsupported are gathered (and yielded), and, if
    ``collect``, garbage is collected before each optimizer pass it announces.

    tf2onnx deep-copies the whole graph, weights included, before every optimizer pass,
    and the copies it drops hold reference cycles that Python frees only in a full
    collection, which a process holding TensorFlow's millions of objects seldom runs:
    left alone, VGG16 (0.5 GiB of weights) needed over 24 GiB, a 150 MB model 9.5 GiB
    (3.7 GiB with these collections)."""
    import gc
    import logging

    unsupported: list[tuple[str, str]] = []

    class Reader(logging.Handler):
        def emit(self, record):
            if record.msg == _UNSUPPORTED_OP and len(record.args or ()) == 2:
                unsupported.append(tuple(map(str, record.args)))
            elif record.msg == _OPTIMIZER_PASS and collect:
                gc.collect()

    logger = logging.getLogger("tf2onnx")
    handler, propagate, level = Reader(_TF2ONNX_VERBOSE), logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(_TF2ONNX_VERBOSE)
    try:
        yield unsupported
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)


def _check_onnx(written: Path, path: Path, unsupported: list[tuple[str, str]]) -> None:
    """Refuse an ONNX file tf2onnx wrote around ops it could not convert, or that
    onnx.checker rejects for any other reason."""
    import onnx
    import tf2onnx

    shown = str(path)
    if unsupported:
        ops = sorted({op for _, op in unsupported})
        causes = sorted({_OP_CAUSES[op] for op in ops if op in _OP_CAUSES})
        raise UsageError(
            f"{shown}: tf2onnx {tf2onnx.__version__} cannot convert the TensorFlow "
            f"op{'s' if len(ops) > 1 else ''} {', '.join(ops)}"
            + (f" (used by {', '.join(causes)})" if causes else "")
            + f", first at {clip(unsupported[0][0], 80)}; nothing written")
    try:
        onnx.checker.check_model(str(written))
    except onnx.checker.ValidationError as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else "invalid"
        raise UsageError(f"{shown}: the ONNX file tf2onnx {tf2onnx.__version__} wrote does "
                         f"not pass onnx.checker: {clip(text, 200)}; nothing written") \
            from None
