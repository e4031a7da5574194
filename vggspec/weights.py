"""Loading weights by layer name, all or nothing, and saving models atomically.

Three layouts are read, none of them by deserialising code or config:
- the legacy Keras HDF5 layout of the published ImageNet files
  (``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` and ``_notop``): a group per layer
  name with a ``weight_names`` attribute;
- Keras 3 ``.weights.h5``: ``layers/<name>/vars/<i>``, where Keras names each layer by
  its class and position (conv2d, conv2d_1, ...), so we name ours the same way; and
  keras-hub's nested ``layers/<x>_backbone/layers/...`` (our layers up to the head,
  named within the backbone) with ``layers/sequential/layers/...`` (the head's);
- ``.keras`` archives: only their ``model.weights.h5`` member is read.

Weights files come from strangers, so everything is checked from headers before any
array is read, and the work done for a file is bounded by the model, not by the file:
- Names (legacy layout). ``layer_names`` and ``weight_names`` must be lists of strings,
  at most MAX_LAYER_NAMES and MAX_WEIGHT_NAMES of them, none longer than MAX_NAME_BYTES
  and none twice; only the groups of layers the model has are opened. HDF5 copies a
  variable-length string once per reference, so such a list may hold at most
  MAX_NAMES_BYTES were every entry the file's longest string; and since HDF5 loops
  for ever on a string heap whose free space claims 0 bytes, the heap is walked first.
- Links. Only the paths to the model's weights are followed, a step at a time: a link
  to another file on the way is refused, and so are soft links that loop (more than
  MAX_LINK_HOPS on one path). A weight's data must be inside the file (no external or
  virtual storage).
- Storage. A dataset is stored contiguously, compactly, or in chunks no larger than the
  dataset in any dimension and at most MAX_CHUNKS of them (a million 4-byte chunks took
  HDF5 9 s and 3.8 GiB), and it may not store more bytes than its chunks hold. Keras and
  the published files use no filters; of those h5py writes by name, shuffle, gzip
  (deflate) and fletcher32 are read, each once, in h5py's order. LZF, SZIP,
  scale-offset, N-bit and plugin filters are refused: their decoders size buffers from
  the file, or are not there. A filtered chunk holds at most MAX_FILTERED_CHUNK_BYTES,
  and is stored in little more; HDF5 inflates a gzip chunk whole however far past its
  chunk it goes (a 1 MB file held a 1 GiB stream), so each stream is first inflated
  here, in small pieces, keeping nothing, to prove that it ends within its chunk.
- Messages. One line naming the file: the first MAX_LISTED mismatched layers (fewer
  where the line would pass MAX_MESSAGE), then how many more; file text quoted, library
  text clipped to MAX_LIBRARY_TEXT. Whatever a library raises on a corrupt file
  (READ_ERRORS) becomes InputError.
"""

from __future__ import annotations

import io
import lzma
import math
import mmap
import os
import re
import zipfile
from dataclasses import dataclass
import zlib
from pathlib import Path

from ._files import atomic_path, check_output_file, check_regular, open_regular, read_start
from .errors import InputError, clip, format_shapes, quote, settle_mismatches

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
KERAS_WEIGHTS_MEMBER = "model.weights.h5"
# A .keras archive's weights member may be at most this many times the model's float32
# weights (room for an optimizer's state, saved beside them), plus a little: anything
# larger is refused from the zip directory, before a byte is inflated.
MEMBER_FACTOR = 3
MEMBER_SLACK = 16 << 20
# Legacy names: generous for any Keras model, small enough that reading them is cheap.
MAX_LAYER_NAMES = 10_000
MAX_WEIGHT_NAMES = 16
MAX_NAME_BYTES = 1024
MAX_LINK_HOPS = 16
# ...and what reading one list may cost: variable-length strings are read once per
# reference, so a list of them may cost its length times the file's longest string.
MAX_NAMES_BYTES = 16 << 20
MAX_HEAP_OBJECTS = 1 << 20
# Chunked storage: h5py's own chunking makes at most a few thousand chunks per dataset.
MAX_CHUNKS = 1 << 16
MAX_FILTERED_CHUNK_BYTES = 64 << 20
INFLATE_PIECE = 16 << 10
# Messages: at most this many mismatched layers are listed (fewer where the line would
# pass MAX_MESSAGE), then counted; library text is quoted at most this long.
MAX_LIBRARY_TEXT = 200

SHUFFLE, DEFLATE, FLETCHER32 = 2, 1, 3
FILTER_NAMES = {DEFLATE: "gzip", SHUFFLE: "shuffle", FLETCHER32: "fletcher32", 4: "szip",
                5: "n-bit", 6: "scale-offset", 32000: "lzf"}
# What a library may raise on a corrupt file (HDF5 errors arrive as several of these,
# a link loop as RuntimeError, zipfile's as RuntimeError, NotImplementedError, EOFError,
# zlib.error or lzma.LZMAError).
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, ArithmeticError,
               RuntimeError, SystemError, EOFError, zlib.error, lzma.LZMAError,
               zipfile.BadZipFile)


@dataclass(frozen=True)
class LoadReport:
    """What a load did: the layers loaded, and (for a partial load) the layers left as
    they were, each with the reason, such as a head of another size."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...] = ()


def load_weights(model, path: str | os.PathLike, partial: bool = False) -> LoadReport:
    """Load weights into ``model`` by layer name. Every layer with weights must be in the
    file with the same shapes; otherwise nothing is loaded and InputError lists the
    mismatched layers with both shapes (the first few, then how many more). Layers in
    the file that the model lacks are ignored (a file with a top loads into a model
    without one).

    ``partial=True`` is for transfer learning: every layer whose name and shapes fit is
    loaded, the others keep their initial weights and are listed in the report's
    ``skipped``. Never partial unless asked; a file of which no layer fits is refused.

    Hostile files are refused before any weights are read: shapes are compared from the
    HDF5 headers, a .keras archive's member size from its zip directory, and links or
    storage that point outside the file are not followed (see the module's rules).

    >>> model = build_model(vggspec.spec_from_text(
    ...     "name: t\\ninput: {shape: [32, 32, 3]}\\nblocks: [[8, max]]\\nhead: {type: none}"))
    >>> model.save_weights("t.weights.h5")
    >>> load_weights(model, "t.weights.h5").loaded
    ('block1_conv1',)
    >>> load_weights(model, "archs/vgg16.yaml")
    Traceback (most recent call last):
    ...
    vggspec.errors.InputError: archs/vgg16.yaml: not a weights file vggspec reads (Keras .h5, .weights.h5 or .keras; torchvision or timm .safetensors, .pth)
    """
    skipped: list[str] = []
    arrays = read_weights(Path(path), model, skipped if partial else None)
    for layer in model.layers:
        if layer.name in arrays:
            layer.set_weights(arrays[layer.name])
    return LoadReport(tuple(arrays), tuple(skipped))



def read_weights(path: Path, model, skipped: list[str] | None = None) -> dict[str, list]:
    """Read the arrays of every layer of ``model`` that has weights from a weights file,
    as {layer name: [arrays]}. Raises InputError, before reading any array, when a layer
    is missing or its shapes differ, and for any file that is corrupt or breaks the
    module's rules. Given a ``skipped`` list, reads only the layers that fit and appends
    a reason for each other one (a partial load).

    >>> model = build_model(vggspec.spec_from_text(
    ...     "name: t\\ninput: {shape: [32, 32, 3]}\\nblocks: [[8, max]]\\nhead: {type: none}"))
    >>> model.save_weights("t.weights.h5")
    >>> arrays = read_weights(Path("t.weights.h5"), model)
    >>> arrays["block1_conv1"][0].shape
    (3, 3, 3, 8)
    """
    import h5py

    from . import checkpoints

    # PyTorch's zip checkpoints start like a .keras archive: their content decides.
    if checkpoints.checkpoint_format(path) is not None:
        return checkpoints.read_checkpoint_arrays(path, model, skipped)
    head = read_start(path, len(HDF5_MAGIC), "weights file")
    try:
        if head.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(path) as archive:
                data = _read_member(archive, path, model)
            with h5py.File(io.BytesIO(data), "r") as handle:
                return _read_checked(handle, model, path, _StringHeap(path, data), skipped)
        if head != HDF5_MAGIC:
            raise InputError(f"{path}: not a weights file vggspec reads (Keras .h5, "
                             f".weights.h5 or .keras; torchvision or timm .safetensors, "
                             f".pth)")
        with h5py.File(check_regular(path, "weights file"), "r") as handle:
            return _read_checked(handle, model, path, _StringHeap(path), skipped)
    except InputError:
        raise
    except READ_ERRORS as error:
        raise InputError(f"{path}: cannot read weights (truncated or corrupt file?): "
                         f"{_library_text(error)}") from None


def _library_text(error: BaseException) -> str:
    """A library's error, first line only and clipped (h5py's can quote file text)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = text.strip().splitlines()
    return clip(lines[0] if lines else type(error).__name__, MAX_LIBRARY_TEXT)


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
    if info.flag_bits & 0x1:
        raise InputError(f"{path}: {KERAS_WEIGHTS_MEMBER} is encrypted; refused")
    # The directory's size may lie: read no more than the limit, whatever the stream holds.
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path}: {KERAS_WEIGHTS_MEMBER} inflates past {limit:,} bytes, "
                         f"more than model '{model.name}' can need; refused")
    return data


def _read_checked(handle, model, path: Path, heap: _StringHeap,
                  skipped: list[str] | None = None) -> dict[str, list]:
    """Find each layer's datasets, compare their shapes (from the headers) with the
    model's, check how they are stored, then read them: all or nothing."""
    import h5py

    weights = _member(handle, "model_weights", h5py.Group, path)
    if weights is not None or "layer_names" in handle.attrs:
        found = _legacy_datasets(handle if weights is None else weights, model, path, heap)
    elif (layers := _member(handle, "layers", h5py.Group, path)) is not None:
        found = _keras3_datasets(layers, model, path)
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
                            f"{format_shapes(wanted)})")
            continue
        got = [tuple(d.shape) if d.shape is not None else () for d in datasets]
        if got != wanted:
            problems.append(f"{layer.name} has {clip(format_shapes(got), 120)} in the file, "
                            f"the model needs {format_shapes(wanted)}")
            continue
        chosen[layer.name] = datasets
    settle_mismatches(f"{path}: weights do not fit model '{model.name}'", problems,
                      bool(chosen), skipped)
    budget = [MAX_CHUNKS]  # chunks read in the whole file, not only in each dataset
    for datasets in chosen.values():
        for dataset in datasets:
            _check_dataset(dataset, path, budget)
    arrays = {name: [dataset[()] for dataset in datasets] for name, datasets in chosen.items()}
    for name, values in arrays.items():
        for array in values:
            if not _fits_float32(array):
                raise InputError(f"{path}: {quote(name)} holds values that are not finite "
                                 f"float32 numbers (inf, nan or beyond 3.4e38); nothing loaded")
    return arrays


def _fits_float32(array) -> bool:
    import numpy as np

    if array.dtype.kind != "f" or array.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array).all()
                    and np.abs(array).max() <= np.finfo(np.float32).max)


def _member(group, name: str | bytes, kind, path: Path):
    """``group[name]`` (``name`` may be a path) if it is a ``kind`` (h5py.Group or
    Dataset), None if it is not there. Links are followed here, a step at a time, so
    that the cost does not grow with the file, none leads to another file (HDF5 would
    open it) and none loops."""
    import h5py

    target = name if isinstance(name, bytes) else name.encode("utf-8")
    current = group.file if target.startswith(b"/") else group
    steps, hops = [step for step in target.split(b"/") if step not in (b"", b".")], 0
    while steps:
        step = steps.pop(0)
        if not isinstance(current, h5py.Group) or not current.id.links.exists(step):
            return None
        links = current.id.links
        where = f"{(current.name or '').rstrip('/')}/{step.decode('utf-8', 'replace')}"
        kind_of_link = links.get_info(step).type
        if kind_of_link == h5py.h5l.TYPE_SOFT:
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise InputError(f"{path}: {quote(where)} is a soft link that loops, or "
                                 f"the last of more than {MAX_LINK_HOPS} on one path; "
                                 f"refused")
            goal = links.get_val(step)
            steps = [part for part in goal.split(b"/") if part not in (b"", b".")] + steps
            current = current.file if goal.startswith(b"/") else current
            continue
        if kind_of_link == h5py.h5l.TYPE_EXTERNAL:
            raise InputError(f"{path}: {quote(where.lstrip('/'))} links to another file; "
                             f"refused")
        if kind_of_link != h5py.h5l.TYPE_HARD:
            raise InputError(f"{path}: {quote(where)} is a user-defined link; refused")
        current = current[step]
    if isinstance(current, kind):
        return current
    text = target.decode("utf-8", "replace")
    full = text if text.startswith("/") else f"{(group.name or '').rstrip('/')}/{text}"
    what = "a group" if kind is h5py.Group else "a dataset"
    raise InputError(f"{path}: {quote(full)} is not {what}; refused")


def _names(owner, attribute: str, most: int, path: Path, heap: _StringHeap) -> list[bytes]:
    """A legacy names attribute as a list of byte strings, its count and width (or, for
    variable-length strings, the file's longest string) checked before it is read;
    repeats are refused."""
    import h5py

    where = f"{attribute} of {quote(owner.name)}"
    if attribute not in owner.attrs:
        raise InputError(f"{path}: {quote(owner.name)} has no {attribute}; not a Keras "
                         f"weights group")
    header = owner.attrs.get_id(attribute)
    shape = header.shape
    if shape is None or math.prod(shape) == 0:
        return []
    string = h5py.check_string_dtype(header.dtype)
    if string is None or len(shape) != 1:
        kind = "text" if string is not None else f"{header.dtype} values"
        raise InputError(f"{path}: {where} must be a list of names; got {kind} of shape "
                         f"{format_shapes([shape])}")
    if shape[0] > most:
        raise InputError(f"{path}: {where} lists {shape[0]:,} names, more than the "
                         f"{most:,} read; refused")
    if string.length is not None and string.length > MAX_NAME_BYTES:
        raise InputError(f"{path}: {where} holds names of {string.length:,} bytes, more "
                         f"than the {MAX_NAME_BYTES:,} read; refused")
    if string.length is None:
        longest = heap.longest(owner.file.id.get_create_plist().get_sizes()[1])
        if shape[0] * (longest + 1) > MAX_NAMES_BYTES:
            raise InputError(f"{path}: {where} lists {shape[0]:,} variable-length names, "
                             f"each of which may be the file's longest string ({longest:,} "
                             f"bytes): too much to read; refused")
    try:
        values = owner.attrs[attribute]
    except UnicodeDecodeError:
        raise InputError(f"{path}: {where} holds a name that is not UTF-8 text; "
                         f"refused") from None
    names = [n if isinstance(n, bytes) else str(n).encode("utf-8", "surrogateescape")
             for n in values]
    seen = set()
    for name in names:
        if len(name) > MAX_NAME_BYTES:
            raise InputError(f"{path}: {where} holds a name of {len(name):,} bytes, more "
                             f"than the {MAX_NAME_BYTES:,} read; refused")
        if name in seen:
            raise InputError(f"{path}: {where} lists "
                             f"{quote(name.decode('utf-8', 'replace'))} twice; refused")
        seen.add(name)
    return names


def _legacy_datasets(group, model, path: Path, heap: _StringHeap) -> dict[str, list]:
    """{layer name: [datasets]} of the legacy layout, headers only, for the model's
    layers alone."""
    import h5py

    listed = set(_names(group, "layer_names", MAX_LAYER_NAMES, path, heap))
    found = {}
    for layer in model.layers:
        name = layer.name.encode("utf-8")
        if not layer.weights or name not in listed:
            continue
        stored = _member(group, name, h5py.Group, path)
        if stored is None:
            continue
        datasets = []
        for weight in _names(stored, "weight_names", MAX_WEIGHT_NAMES, path, heap):
            dataset = _member(stored, weight, h5py.Dataset, path)
            if dataset is None:
                raise InputError(f"{path}: weight_names of {quote(stored.name)} lists "
                                 f"{quote(weight.decode('utf-8', 'replace'))}, which is not "
                                 f"in the file")
            datasets.append(dataset)
        found[layer.name] = datasets
    return found


class _StringHeap:
    """The file's global heap, where HDF5 keeps variable-length strings, looked at only
    when a names attribute holds them. HDF5 copies a string once per reference (ten
    thousand references to one 100 kB string: 1.9 GB from a 0.5 MB file), and loops
    forever on a heap collection whose free space claims 0 bytes."""

    def __init__(self, path: Path, data: bytes | None = None):
        self.path, self.data, self.found = path, data, None

    def longest(self, length_size: int) -> int:
        """The longest string in the file, in bytes; InputError for a corrupt heap."""
        if self.found is None:
            if self.data is not None:
                self.found = _scan_heap(self.data, length_size, self.path)
            else:
                with open_regular(self.path, "weights file") as handle, \
                        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as raw:
                    self.found = _scan_heap(raw, length_size, self.path)
        return self.found


def _scan_heap(raw, length_size: int, path: Path) -> int:
    """Walk every global heap collection ('GCOL', version 1) as HDF5 would, returning the
    largest object; refuse an object that does not fit its collection, which HDF5 would
    loop on or read past."""
    header = 8 + length_size  # signature, version, reserved, collection size
    flood = (f"{path}: holds more than {MAX_HEAP_OBJECTS:,} variable-length strings or "
             f"string heaps; refused")
    largest, objects, at = 0, 0, raw.find(b"GCOL")
    while at >= 0:
        objects += 1  # signatures count too: a file may be nothing else
        if objects > MAX_HEAP_OBJECTS:
            raise InputError(flood)
        if raw[at + 4:at + 5] == b"\x01" and at + header <= len(raw):
            end = min(at + int.from_bytes(raw[at + 8:at + header], "little"), len(raw))
            place = at + header
            while place + header <= end:  # objects have headers of the same size
                index = int.from_bytes(raw[place:place + 2], "little")
                size = int.from_bytes(raw[place + 8:place + header], "little")
                need = header + -(-size // 8) * 8 if index else size
                if not 0 < need <= end - place:
                    raise InputError(f"{path}: the string heap at byte {at:,} is corrupt "
                                     f"(an object of {size:,} bytes where {end - place:,} "
                                     f"remain); refused")
                objects += 1
                if objects > MAX_HEAP_OBJECTS:
                    raise InputError(flood)
                largest = max(largest, size if index else 0)
                place += need
        at = raw.find(b"GCOL", at + 1)
    return largest


def _snake_case(name: str) -> str:
    """Keras' own rule: MaxPooling2D -> max_pooling2d, InputLayer -> input_layer."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def keras3_layer_paths(model) -> dict[str, str]:
    """Our layer name -> the name Keras 3 gives it inside .weights.h5 files."""
    return _keras3_names(model.layers)


def _keras3_names(layers) -> dict[str, str]:
    """Keras 3's names for ``layers`` within one model: class, snake_cased, counted."""
    counts: dict[str, int] = {}
    paths = {}
    for layer in layers:
        base = _snake_case(type(layer).__name__)
        count = counts.get(base, 0)
        counts[base] = count + 1
        paths[layer.name] = base if count == 0 else f"{base}_{count}"
    return paths


# keras-hub's VGGImageClassifier is a model of two models: its VGGBackbone (conv and
# pool layers) and a keras.Sequential head (flatten or pooler, dense, dropout). Keras
# stores a nested model's layers as layers/<its class, snake_cased>/layers/<name>/vars.
KERAS_HUB_HEAD = "sequential"
HEAD_CLASSES = ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                "AdaptiveAveragePooling2D", "Dense")


def _keras3_parts(stored, model, path: Path) -> list[tuple[object, list]]:
    """[(group holding layer groups, our layers it holds)]: the whole model under
    ``layers`` in a flat file; in a nested (keras-hub) file, our layers up to the head
    under ``layers/<x>_backbone/layers`` and the head's under ``layers/sequential/layers``."""
    import h5py

    count = len(stored)
    if count > MAX_LAYER_NAMES:
        raise InputError(f"{path}: {quote(stored.name)} holds {count:,} entries, more than "
                         f"the {MAX_LAYER_NAMES:,} a model may have; refused")
    backbones = []
    for name in stored:
        if name == "backbone" or name.endswith("_backbone"):
            backbones.append(name)
    nested = [name for name in backbones
              if _member(stored, f"{name}/layers", h5py.Group, path) is not None]
    if not nested:
        return [(stored, list(model.layers))]
    if len(nested) > 1:
        raise InputError(f"{path}: {len(nested)} backbones nested in one model "
                         f"({', '.join(quote(name) for name in sorted(nested)[:4])}); "
                         f"refused")
    layers = list(model.layers)
    start = next((index for index, layer in enumerate(layers)
                  if type(layer).__name__ in HEAD_CLASSES), len(layers))
    parts = [(_member(stored, f"{nested[0]}/layers", h5py.Group, path), layers[:start])]
    if start < len(layers):
        head = _member(stored, f"{KERAS_HUB_HEAD}/layers", h5py.Group, path)
        if head is not None:
            parts.append((head, layers[start:]))
    return parts


def _keras3_datasets(stored, model, path: Path) -> dict[str, list]:
    """{our layer name: [datasets]} of a Keras 3 ``layers/<name>/vars/<i>`` layout, or
    of keras-hub's nested ``layers/<backbone>/layers/<name>/vars/<i>`` one."""
    import h5py

    found = {}
    for group, layers in _keras3_parts(stored, model, path):
        keys = _keras3_names(layers)
        for layer in layers:
            if not layer.weights:
                continue
            entry = _member(group, keys[layer.name], h5py.Group, path)
            variables = None if entry is None else _member(entry, "vars", h5py.Group, path)
            if variables is None:
                continue
            count = len(variables)
            if count > MAX_WEIGHT_NAMES:
                raise InputError(f"{path}: {quote(variables.name)} holds {count:,} "
                                 f"variables, more than the {MAX_WEIGHT_NAMES:,} a layer may "
                                 f"have; refused")
            datasets = []
            for index in range(count):
                dataset = _member(variables, str(index), h5py.Dataset, path)
                if dataset is None:
                    raise InputError(f"{path}: {quote(variables.name)} has no variable "
                                     f"'{index}' among its {count:,}; refused")
                datasets.append(dataset)
            found[layer.name] = datasets
    return found


def _check_dataset(dataset, path: Path, budget: list[int]) -> None:
    """Refuse, from its header, a dataset whose data is not numbers, lives outside the
    file, or would take more memory or time to read than its size warrants."""
    import h5py

    name = quote(dataset.name)
    if dataset.dtype.kind not in "fiu":
        raise InputError(f"{path}: {name} holds {dataset.dtype}, not numbers; nothing loaded")
    if dataset.is_virtual or dataset.external:
        raise InputError(f"{path}: {name} keeps its data outside the file; refused")
    plist = dataset.id.get_create_plist()
    filters = [plist.get_filter(index)[0] for index in range(plist.get_nfilters())]
    stored = dataset.id.get_storage_size()
    if plist.get_layout() != h5py.h5d.CHUNKED:
        if filters:
            raise InputError(f"{path}: {name} has filters but no chunks; refused")
        if stored > dataset.nbytes:
            raise InputError(f"{path}: {name} stores {stored:,} bytes for "
                             f"{dataset.nbytes:,} bytes of data; refused")
        return
    shape, chunks = dataset.shape, dataset.chunks
    if any(chunk > max(size, 1) for chunk, size in zip(chunks, shape)):
        raise InputError(f"{path}: {name} is stored in chunks of {format_shapes([chunks])}, "
                         f"larger than its shape {format_shapes([shape])}; refused")
    cells = math.prod(-(-size // chunk) for chunk, size in zip(chunks, shape))
    if cells > MAX_CHUNKS:
        raise InputError(f"{path}: {name} is stored in {cells:,} chunks, more than the "
                         f"{MAX_CHUNKS:,} read; refused")
    chunk_bytes = math.prod(chunks) * dataset.dtype.itemsize
    if filters:
        _check_filters(filters, name, path)
        if chunk_bytes > MAX_FILTERED_CHUNK_BYTES:
            raise InputError(f"{path}: {name} has filtered chunks of {chunk_bytes:,} bytes, "
                             f"more than the {MAX_FILTERED_CHUNK_BYTES:,} read; refused")
    each = _stored_limit(chunk_bytes) if filters else chunk_bytes
    count = dataset.id.get_num_chunks()
    budget[0] -= count
    if budget[0] < 0:
        raise InputError(f"{path}: the weights are stored in more than {MAX_CHUNKS:,} "
                         f"chunks in all, more than are read; refused")
    if count > cells or stored > cells * each:
        raise InputError(f"{path}: {name} stores {stored:,} bytes in {count:,} "
                         f"chunk{'s' * (count != 1)} for {dataset.nbytes:,} bytes of data; "
                         f"refused")
    if filters:
        _check_chunks(dataset, filters, chunk_bytes, name, path)


def _stored_limit(chunk_bytes: int) -> int:
    """The most bytes a filtered chunk may be stored in: a little over its data, for
    zlib's worst case on incompressible data and fletcher32's checksum."""
    return chunk_bytes + chunk_bytes // 1024 + 64


def _check_filters(filters: list[int], name: str, path: Path) -> None:
    order = [SHUFFLE, DEFLATE, FLETCHER32]
    for code in filters:
        if code not in order:
            words = FILTER_NAMES.get(code, f"filter {code}")
            raise InputError(f"{path}: {name} is compressed with {words}; only gzip, "
                             f"shuffle and fletcher32 are read")
    if filters != sorted(set(filters), key=order.index):
        words = ", ".join(FILTER_NAMES[code] for code in filters)
        raise InputError(f"{path}: {name} applies the filters {words}; only shuffle, "
                         f"gzip, fletcher32, each at most once in that order, are read")


def _check_chunks(dataset, filters: list[int], chunk_bytes: int, name: str,
                  path: Path) -> None:
    """Refuse a filtered chunk stored in much more than its data, or a gzip chunk that
    inflates past it: each is inflated here first, keeping nothing, since HDF5 would
    inflate it whole, whatever its length."""
    chunks = []
    dataset.id.chunk_iter(chunks.append)  # as many as get_num_chunks, checked already
    deflate_bit = 1 << filters.index(DEFLATE) if DEFLATE in filters else 0
    checksum_bit = 1 << filters.index(FLETCHER32) if FLETCHER32 in filters else 0
    for chunk in chunks:
        if chunk.size > _stored_limit(chunk_bytes):
            raise InputError(f"{path}: {name} stores a chunk in {chunk.size:,} bytes, "
                             f"more than its {chunk_bytes:,} bytes of data; refused")
        if checksum_bit and not chunk.filter_mask & checksum_bit and chunk.size < 4:
            # HDF5's fletcher32 filter reads past a chunk shorter than its checksum and
            # crashes the process: refused before HDF5 sees it.
            raise InputError(f"{path}: {name} has a checksummed chunk of {chunk.size} "
                             f"byte{'s' * (chunk.size != 1)}, shorter than its checksum; "
                             f"refused")
        if not deflate_bit or chunk.filter_mask & deflate_bit:
            continue
        _, data = dataset.id.read_direct_chunk(chunk.chunk_offset)
        if checksum_bit and not chunk.filter_mask & checksum_bit:
            data = data[:-4]
        # Fed in small pieces, so that no one call inflates more than about a thousand
        # times a piece, and nothing inflated is kept.
        inflater, total, view = zlib.decompressobj(), 0, memoryview(data)
        for start in range(0, len(view), INFLATE_PIECE):
            total += len(inflater.decompress(view[start:start + INFLATE_PIECE]))
            if total > chunk_bytes:
                raise InputError(f"{path}: {name} has a gzip chunk that inflates past its "
                                 f"{chunk_bytes:,} bytes; refused")
            if inflater.eof:
                break


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
