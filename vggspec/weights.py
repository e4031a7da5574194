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

from ._files import atomic_path, check_output_file, check_regular, read_start
from .errors import InputError, quote

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
KERAS_WEIGHTS_MEMBER = "model.weights.h5"
# A .keras archive's weights member may be at most this many times the model's float32
# weights (room for an optimizer's state, saved beside them), plus a little: anything
# larger is refused from the zip directory, before a byte is inflated.
MEMBER_FACTOR = 3
MEMBER_SLACK = 16 << 20


def load_weights(model, path: str | os.PathLike) -> None:
    """Load weights into ``model`` by layer name. Every layer with weights must be in the
    file with the same shapes; otherwise nothing is loaded and InputError lists each
    mismatched layer with both shapes. Layers in the file that the model lacks are
    ignored (a file with a top loads into a model without one).

    Hostile files are refused before any weights are read: shapes are compared from the
    HDF5 headers, a .keras archive's member size from its zip directory, and links or
    storage that point outside the file are not followed."""
    arrays = read_weights(Path(path), model)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(arrays[layer.name])


def _shapes(shapes: list[tuple]) -> str:
    return " ".join(str(s).replace(" ", "") for s in shapes)


def read_weights(path: Path, model) -> dict[str, list]:
    """Read the arrays of every layer of ``model`` that has weights from a weights file,
    as {layer name: [arrays]}. Raises InputError, before reading any array, when a layer
    is missing or its shapes differ."""
    import h5py

    head = read_start(path, len(HDF5_MAGIC), "weights file")
    try:
        if head.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(path) as archive:
                data = io.BytesIO(_read_member(archive, path, model))
            with h5py.File(data, "r") as handle:
                return _read_checked(handle, model, path)
        if head != HDF5_MAGIC:
            raise InputError(f"{path}: not an HDF5 or .keras file")
        with h5py.File(check_regular(path, "weights file"), "r") as handle:
            return _read_checked(handle, model, path)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read weights (truncated or corrupt file?): "
                         f"{error}".splitlines()[0]) from None


def _read_member(archive: zipfile.ZipFile, path: Path, model) -> bytes:
    try:
        info = archive.getinfo(KERAS_WEIGHTS_MEMBER)
    except KeyError:
        raise InputError(f"{path}: a zip file without {KERAS_WEIGHTS_MEMBER}; "
                         f"not a .keras model") from None
    limit = MEMBER_FACTOR * 4 * model.count_params() + MEMBER_SLACK
    if info.file_size > limit:
        raise InputError(f"{path}: {KERAS_WEIGHTS_MEMBER} would inflate to "
                         f"{info.file_size:,} bytes, more than model '{model.name}' can "
                         f"need ({limit:,}); refused unread")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InputError(f"{path}: {KERAS_WEIGHTS_MEMBER} is compressed with method "
                         f"{info.compress_type}; only stored and deflated members are read")
    # The directory's size may lie: read no more than the limit, whatever the stream holds.
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path}: {KERAS_WEIGHTS_MEMBER} inflates past {limit:,} bytes, "
                         f"more than model '{model.name}' can need; refused")
    return data


def _read_checked(handle, model, path: Path) -> dict[str, list]:
    """Find each layer's datasets, compare their shapes (from the headers) with the
    model's, then read them: all or nothing."""
    import h5py

    # A non-None result stops the walk (raising inside h5py's visitor is not safe).
    external = handle.visititems_links(
        lambda name, link: name if isinstance(link, h5py.ExternalLink) else None)
    if external is not None:
        raise InputError(f"{path}: {quote(external)} links to another file; refused")
    if "layer_names" in handle.attrs or "model_weights" in handle:
        found = _legacy_datasets(handle["model_weights"] if "model_weights" in handle
                                 else handle)
    elif "layers" in handle:
        found = _keras3_datasets(handle["layers"], model)
    else:
        raise InputError(f"{path}: an HDF5 file with no Keras weights in it")
    problems, chosen = [], {}
    for layer in model.layers:
        wanted = [tuple(v.shape) for v in layer.weights]
        if not wanted:
            continue
        datasets = found.get(layer.name)
        if datasets is None:
            problems.append(f"{layer.name} missing from the file (model needs "
                            f"{_shapes(wanted)})")
            continue
        got = [tuple(d.shape) for d in datasets]
        if got != wanted:
            problems.append(f"{layer.name} has {_shapes(got)} in the file, the model needs "
                            f"{_shapes(wanted)}")
            continue
        chosen[layer.name] = datasets
    if problems:
        raise InputError(f"{path}: weights do not fit model '{model.name}', nothing loaded: "
                         + "; ".join(problems))
    for name, datasets in chosen.items():
        for dataset in datasets:
            if dataset.dtype.kind not in "fiu":
                raise InputError(f"{path}: {quote(dataset.name)} holds {dataset.dtype}, not "
                                 f"numbers; nothing loaded")
            if dataset.is_virtual or dataset.external:
                raise InputError(f"{path}: {quote(dataset.name)} keeps its data outside "
                                 f"the file; refused")
    return {name: [dataset[()] for dataset in datasets] for name, datasets in chosen.items()}


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _legacy_datasets(group) -> dict[str, list]:
    """{layer name: [datasets]} of the legacy layout, headers only."""
    found = {}
    for name in (_text(n) for n in group.attrs["layer_names"]):
        layer = group[name]
        found[name] = [layer[_text(w)] for w in layer.attrs["weight_names"]]
    return found


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


def _keras3_datasets(stored, model) -> dict[str, list]:
    """{our layer name: [datasets]} of a Keras 3 ``layers/<name>/vars/<i>`` layout."""
    found = {}
    for name, key in keras3_layer_paths(model).items():
        if key in stored and "vars" in stored[key]:
            variables = stored[key]["vars"]
            found[name] = [variables[str(i)] for i in range(len(variables))]
    return found


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
