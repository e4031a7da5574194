"""Loading weights by layer name, all or nothing, and saving models atomically.

Three layouts are read, none of them by deserialising code or config:
- the legacy Keras HDF5 layout of the published ImageNet files
  (``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` and ``_notop``): a group per layer
  name with a ``weight_names`` attribute;
- Keras 3 ``.weights.h5``: ``layers/<name>/vars/<i>``, where Keras names each layer by
  its class and position (conv2d, conv2d_1, ...), so we name ours the same way;
- ``.keras`` archives: only their ``model.weights.h5`` member is read.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

from ._files import atomic_path, check_output_file, read_start
from .errors import InputError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


def load_weights(model, path: str | os.PathLike) -> None:
    """Load weights into ``model`` by layer name. Every layer with weights must be in the
    file with the same shapes; otherwise nothing is loaded and InputError lists each
    mismatched layer with both shapes. Layers in the file that the model lacks are
    ignored (a file with a top loads into a model without one)."""
    path = Path(path)
    found = read_weights(path, model)
    problems, assignments = [], []
    for layer in model.layers:
        wanted = [tuple(v.shape) for v in layer.weights]
        if not wanted:
            continue
        arrays = found.get(layer.name)
        if arrays is None:
            problems.append(f"{layer.name} missing from the file (model needs "
                            f"{_shapes(wanted)})")
            continue
        got = [tuple(a.shape) for a in arrays]
        if got != wanted:
            problems.append(f"{layer.name} has {_shapes(got)} in the file, the model needs "
                            f"{_shapes(wanted)}")
            continue
        assignments.append((layer, arrays))
    if problems:
        raise InputError(f"{path}: weights do not fit model '{model.name}', nothing loaded: "
                         + "; ".join(problems))
    for layer, arrays in assignments:
        layer.set_weights(arrays)


def _shapes(shapes: list[tuple]) -> str:
    return " ".join(str(s).replace(" ", "") for s in shapes)


def read_weights(path: Path, model=None) -> dict[str, list]:
    """Read a weights file into {layer name: [arrays]}. Keras 3 files name layers by class
    and position, so ``model`` is needed to turn those into our layer names."""
    import h5py

    head = read_start(path, len(HDF5_MAGIC), "weights file")
    try:
        if head.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(path) as archive:
                if "model.weights.h5" not in archive.namelist():
                    raise InputError(f"{path}: a zip file without model.weights.h5; "
                                     f"not a .keras model")
                data = io.BytesIO(archive.read("model.weights.h5"))
            with h5py.File(data, "r") as handle:
                return _read_keras3(handle, model, path)
        if head != HDF5_MAGIC:
            raise InputError(f"{path}: not an HDF5 or .keras file")
        with h5py.File(path, "r") as handle:
            if "layer_names" in handle.attrs or "model_weights" in handle:
                group = handle["model_weights"] if "model_weights" in handle else handle
                return _read_legacy(group)
            return _read_keras3(handle, model, path)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read weights (truncated or corrupt file?): "
                         f"{error}".splitlines()[0]) from None


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_legacy(group) -> dict[str, list]:
    weights = {}
    for name in (_text(n) for n in group.attrs["layer_names"]):
        layer = group[name]
        weights[name] = [layer[_text(w)][()] for w in layer.attrs["weight_names"]]
    return weights


def _snake_case(name: str) -> str:
    """Keras' own rule: MaxPooling2D -> max_pooling2d, InputLayer -> input_layer."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def keras3_layer_paths(model) -> dict[str, str]:
    """Our layer name -> the name Keras 3 gives it inside .weights.h5 files."""
    counts: dict[str, int] = {}
    paths = {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        count = counts.get(base, 0)
        counts[base] = count + 1
        paths[layer.name] = base if count == 0 else f"{base}_{count}"
    return paths


def _read_keras3(handle, model, path: Path) -> dict[str, list]:
    if "layers" not in handle:
        raise InputError(f"{path}: an HDF5 file with no Keras weights in it")
    if model is None:
        raise InputError(f"{path}: Keras 3 weights files can only be read for a model")
    stored = handle["layers"]
    weights = {}
    for name, key in keras3_layer_paths(model).items():
        if key in stored and "vars" in stored[key]:
            variables = stored[key]["vars"]
            weights[name] = [variables[str(i)][()] for i in range(len(variables))]
    return weights


def save_model(model, path: str | os.PathLike) -> Path:
    """Save ``model`` as a .keras file, atomically: the file appears whole or not at all,
    even on Ctrl-C. Raises InputError for a path that cannot be written."""
    path = check_output_file(path, (".keras",))
    try:
        with atomic_path(path) as temporary:
            model.save(temporary)
    except OSError as error:
        raise InputError(f"{path}: cannot write: {error.strerror or error}") from None
    return path
