"""PyTorch checkpoints, read without running their code, mapped onto our layers.

    .safetensors / .pth --read_state_dict--> {torch key: array}
    {torch key: array} + model --torchvision_to_keras--> {layer name: [arrays, Keras order]}

``read_checkpoint_arrays(path, model)`` does both, all or nothing, comparing shapes
before it reads a tensor and reading only the tensors the model takes: the entry point
for the weights loader. Files are told apart by their content (``checkpoint_format``),
never by their name:
- safetensors: an 8-byte little-endian header length, then a JSON header starting with
  ``{``. Read with the safetensors library (no pickle, no torch), after the header has
  been checked here: at most MAX_HEADER_BYTES, UTF-8, a JSON object with no name twice,
  each tensor a float or integer dtype (F16, BF16, F32, F64, I8 ... U64; BF16, which
  numpy lacks, is widened to float32 here), a shape of at most MAX_RANK whole numbers,
  and data offsets that tile the data section exactly (no gap, no overlap, nothing past
  the end of the file, as safetensors itself writes them), so a header cannot make us
  read or allocate more than the file holds.
- PyTorch: a zip archive with ``<name>/data.pkl`` (torch.save since 1.6) or a bare
  pickle (protocol 2 and later, torch's legacy format), read only by
  ``torch.load(path, map_location="cpu", weights_only=True)`` when torch is installed,
  never by a plain unpickle. torch's reader parses the file, and a flaw in it is
  torch's; its memory is bounded by what the file declares, not by the model.

Layouts, told apart by the keys (a leading ``module.`` on every key, which
DataParallel adds, is dropped):
- torchvision's VGG: ``features.N`` is ``make_layers``' sequence, one module per conv,
  batch norm, ReLU and pool, so N is found by walking our layers in order (a conv with
  a fused activation counts two, its ReLU being a module of its own in PyTorch);
  ``classifier.{3k}`` are the dense layers (each hidden one is followed by ReLU and
  Dropout). The first dense layer after ``flatten`` reads PyTorch's channel-first
  flatten (C, H, W); its rows are reordered to Keras' channel-last flatten (H, W, C).
- timm's VGG: the same ``features``; ``pre_logits.fc1`` is a conv whose kernel covers
  the whole map before ``flatten`` (7x7 in timm), which is a dense layer on that map,
  ``pre_logits.fc2`` a 1x1 conv and ``head.fc`` a Linear. (timm slides its fc1 over
  inputs larger than 224 and then averages; our dense head does what torchvision does.)

Keys the model does not need are ignored (a checkpoint with a classifier loads into a
``head: {type: none}`` model; one with more conv layers into a model cut after a tap),
but a model whose conv layers do not follow the checkpoint's is refused at the first
layer that differs. Batch-norm epsilon and momentum are not in a state dict: the spec
must say them (torchvision's are epsilon 1e-5, momentum 0.9 in Keras' terms).
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ._files import check_regular, open_regular, read_start
from .errors import InputError, clip, format_shapes, quote, settle_mismatches

SAFETENSORS = "safetensors"
TORCH = "torch"
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"  # the PROTO opcode that opens every pickle of protocol 2 and later
# A header this large describes some 200,000 tensors; safetensors' own limit is 100 MB.
MAX_HEADER_BYTES = 16 << 20
# PyTorch tensors of real models have at most 5 axes; a bound keeps sizes cheap to check.
MAX_RANK = 8
# Messages: at most this many mismatched layers are listed, then counted.
MAX_LIBRARY_TEXT = 200
# safetensors dtypes read, as numpy dtypes (BF16 is read as its 16 bits, then widened).
DTYPES = {"F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2",
          "I32": "<i4", "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8"}
DTYPE_WORDS = "F16, BF16, F32, F64, I8 to I64, U8 to U64"
TORCH_ZIP_PICKLE = re.compile(r"[^/]+/data\.pkl")
FEATURE_KEY = re.compile(r"features\.(0|[1-9][0-9]{0,8})\.(weight|bias|running_mean|"
                         r"running_var|num_batches_tracked)")
DATA_PARALLEL_PREFIX = "module."
# Keras weight names -> the PyTorch parameter or buffer holding the same numbers.
TORCH_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
               "moving_mean": "running_mean", "moving_variance": "running_var"}
# The layers from which on a model is its head (no more features.N modules).
HEAD_KINDS = {"AdaptiveAveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
              "Flatten", "Dense"}
TORCHVISION, TIMM = "torchvision", "timm"
# Output channels per block when a kernel is moved to Keras' layout (see _out_last).
TRANSPOSE_BLOCK = 32


def checkpoint_format(path: str | os.PathLike) -> str | None:
    """``"safetensors"`` or ``"torch"`` for a file whose content is one of those,
    otherwise None (an HDF5 file, a .keras archive, anything else). Reads the first 9
    bytes and, for a zip archive, its directory. InputError for a path that is missing
    or not a regular file.

    >>> checkpoint_format("archs/vgg16.yaml") is None
    True
    """
    head = read_start(path, 9, "weights file")
    if len(head) == 9 and head[8:9] == b"{":
        return SAFETENSORS
    if head.startswith(PICKLE_MAGIC):
        return TORCH
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(check_regular(path, "weights file")) as archive:
                names = archive.namelist()
        except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile):
            return None  # not ours to judge: the weights loader reports a broken zip
        if any(TORCH_ZIP_PICKLE.fullmatch(name) for name in names):
            return TORCH
    return None


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Every tensor of a .safetensors or PyTorch checkpoint, as {key: numpy array}, in
    the dtype stored (BF16 widened to float32). The format is told from the content.
    Raises InputError, one line naming the file, for anything else, a header that
    breaks the module's rules, or a PyTorch file when torch is not installed.

    >>> from safetensors.numpy import save_file
    >>> save_file({"features.0.bias": np.arange(3, dtype="float32")}, "w.safetensors")
    >>> read_state_dict("w.safetensors")
    {'features.0.bias': array([0., 1., 2.], dtype=float32)}
    """
    checkpoint = _open(Path(path))
    return checkpoint.read(list(checkpoint.shapes))


def torchvision_to_keras(state: Mapping[str, Any], plan_or_model,
                         source: str = "state dict") -> dict[str, list]:
    """Map a PyTorch VGG state dict (torchvision's or timm's layout, told from its keys)
    onto the layers of ``plan_or_model`` (a Keras model or a vggspec Plan): {layer name:
    [arrays in Keras order]} for every layer with weights, as float32. All or nothing:
    InputError (naming ``source``) when the conv layers differ from the checkpoint's, or
    any layer is missing or has other shapes (the first few listed, then a count).

    >>> model = build_model(vggspec.spec_from_text(
    ...     "name: t\\ninput: {shape: [32, 32, 3]}\\nblocks: [[8, max]]\\nhead: {type: none}"))
    >>> state = {"features.0.weight": np.ones((8, 3, 3, 3)), "features.0.bias": np.zeros(8)}
    >>> torchvision_to_keras(state, model)["block1_conv1"][0].shape
    (3, 3, 3, 8)
    """
    import numpy as np

    arrays = {}
    for key, value in state.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise InputError(f"{source}: {quote(key)} holds {array.dtype} values; only float "
                             f"and integer tensors are read")
        arrays[key] = array
    arrays = _without_data_parallel(arrays)
    chosen = _fit({key: array.shape for key, array in arrays.items()}, plan_or_model,
                  source, None)
    return _convert(chosen, arrays, source)


def read_checkpoint_arrays(path: str | os.PathLike, plan_or_model,
                           skipped: list[str] | None = None) -> dict[str, list]:
    """The weights loader's entry point for PyTorch checkpoints: {layer name: [arrays in
    Keras order]} for every layer of ``plan_or_model`` with weights, read from a
    .safetensors or PyTorch file (see ``read_state_dict``) in torchvision's or timm's
    layout (see ``torchvision_to_keras``). Shapes are compared from the header before
    any tensor is read, and only the tensors the model takes are read. Raises InputError
    as those two do; values that are not finite float32 numbers are refused too.

    Given a ``skipped`` list, reads only the layers that fit and appends the reason for
    each other one (a partial load, as ``vggspec.weights.read_weights`` does); a file of
    which no layer fits, or whose conv layers differ from the model's, is refused still.

    >>> from safetensors.numpy import save_file
    >>> save_file({"features.0.weight": np.ones((8, 3, 3, 3), "float32"),
    ...            "features.0.bias": np.zeros(8, "float32")}, "w.safetensors")
    >>> model = build_model(vggspec.spec_from_text(
    ...     "name: t\\ninput: {shape: [32, 32, 3]}\\nblocks: [[8, max]]\\nhead: {type: none}"))
    >>> read_checkpoint_arrays("w.safetensors", model)["block1_conv1"][0].shape
    (3, 3, 3, 8)
    """
    path = Path(path)
    checkpoint = _open(path)
    chosen = _fit(checkpoint.shapes, plan_or_model, str(path), skipped)
    wanted = sorted({key for slot in chosen for key in slot.keys})
    return _convert(chosen, checkpoint.read(wanted), str(path))


# --- reading files -------------------------------------------------------------------

@dataclass
class _Checkpoint:
    """A checkpoint's tensors: their shapes up front, the arrays read on demand."""

    shapes: dict[str, tuple[int, ...]]
    read: Callable[[list[str]], dict[str, Any]]


def _open(path: Path) -> _Checkpoint:
    kind = checkpoint_format(path)
    if kind == SAFETENSORS:
        checkpoint = _open_safetensors(path)
    elif kind == TORCH:
        checkpoint = _open_torch(path)
    else:
        raise InputError(f"{path}: not a safetensors or PyTorch checkpoint")
    return _strip_data_parallel(checkpoint)


def _strip_data_parallel(checkpoint: _Checkpoint) -> _Checkpoint:
    """Keys without DataParallel's ``module.``, when every key has it."""
    keys = list(checkpoint.shapes)
    if not keys or not all(key.startswith(DATA_PARALLEL_PREFIX) for key in keys):
        return checkpoint
    size = len(DATA_PARALLEL_PREFIX)

    def read(wanted: list[str]) -> dict[str, Any]:
        arrays = checkpoint.read([DATA_PARALLEL_PREFIX + key for key in wanted])
        return {key[size:]: array for key, array in arrays.items()}

    return _Checkpoint({key[size:]: shape for key, shape in checkpoint.shapes.items()}, read)


def _without_data_parallel(arrays: dict[str, Any]) -> dict[str, Any]:
    if arrays and all(key.startswith(DATA_PARALLEL_PREFIX) for key in arrays):
        return {key[len(DATA_PARALLEL_PREFIX):]: array for key, array in arrays.items()}
    return arrays


def _library_text(error: BaseException) -> str:
    """A library's error, first line only and clipped."""
    lines = str(error).strip().splitlines()
    return clip(lines[0] if lines else type(error).__name__, MAX_LIBRARY_TEXT)


def _kind(value: Any) -> str:
    """What a JSON value is, in words, without quoting it at length."""
    if isinstance(value, str):
        return f"the text {quote(value)}"
    return {dict: "an object", list: "a list", bool: "true or false", type(None): "null"}.get(
        type(value), "a number")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(key)
        result[key] = value
    return result


@dataclass(frozen=True)
class _Tensor:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _open_safetensors(path: Path) -> _Checkpoint:
    with open_regular(path, "weights file") as handle:
        size = os.fstat(handle.fileno()).st_size
        length = int.from_bytes(handle.read(8), "little")
        if length > MAX_HEADER_BYTES:
            raise InputError(f"{path}: a safetensors header of {length:,} bytes, more than "
                             f"the {MAX_HEADER_BYTES:,} read; refused")
        if length > size - 8:
            raise InputError(f"{path}: truncated safetensors file: its header claims "
                             f"{length:,} bytes, and {max(size - 8, 0):,} follow")
        raw = handle.read(length)
    if len(raw) != length:
        raise InputError(f"{path}: the safetensors file changed while it was read")
    data_start = 8 + length
    tensors = _check_header(raw, size - data_start, path)

    def read(wanted: list[str]) -> dict[str, Any]:
        return _read_safetensors(path, tensors, data_start, wanted)

    return _Checkpoint({name: tensor.shape for name, tensor in tensors.items()}, read)


def _check_header(raw: bytes, data_size: int, path: Path) -> dict[str, _Tensor]:
    """The tensors a safetensors header declares, after checking every rule of the
    module's docstring; InputError for the first broken one."""
    import numpy as np

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise InputError(f"{path}: the safetensors header is not UTF-8 text; refused") from None
    except _Duplicate as duplicate:
        raise InputError(f"{path}: the safetensors header names {quote(duplicate.args[0])} "
                         f"twice; refused") from None
    except RecursionError:
        raise InputError(f"{path}: the safetensors header is nested too deeply; "
                         f"refused") from None
    except ValueError as error:  # JSONDecodeError, and integers of over 4,300 digits
        raise InputError(f"{path}: the safetensors header is not valid JSON: "
                         f"{_library_text(error)}") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: the safetensors header must be a JSON object of tensors, "
                         f"got {_kind(header)}")
    tensors = {}
    for name, entry in header.items():
        where = f"{path}: tensor {quote(name)}"
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(value, str)
                                                      for value in entry.values()):
                raise InputError(f"{path}: the safetensors __metadata__ must map names to "
                                 f"text; refused")
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise InputError(f"{where}: must be an object with dtype, shape and "
                             f"data_offsets, got {_kind(entry)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            raise InputError(f"{where}: its dtype must be text, got {_kind(dtype)}")
        if dtype not in DTYPES:
            raise InputError(f"{where} is {quote(dtype)}: only float and integer tensors "
                             f"are read ({DTYPE_WORDS}); refused")
        if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(
                _whole(size) for size in shape):
            raise InputError(f"{where}: its shape must be a list of at most {MAX_RANK} whole "
                             f"numbers, got {_kind(shape)}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_whole, offsets))
                and offsets[0] <= offsets[1]):
            raise InputError(f"{where}: its data_offsets must be two whole numbers, begin "
                             f"and end, got {_kind(offsets)}")
        begin, end = offsets
        if end > data_size:
            raise InputError(f"{where} ends at byte {clip(str(end), 30)} of the data, which "
                             f"holds {data_size:,} bytes (truncated file?); refused")
        needed = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if end - begin != needed:
            # Python will not print an integer of over 4,300 digits, nor should we.
            need = f"{needed:,}" if needed < 10 ** 30 else "more than 10^30"
            raise InputError(f"{where} holds {end - begin:,} bytes, its shape and dtype need "
                             f"{need}; refused")
        tensors[name] = _Tensor(dtype, tuple(shape), begin, end)
    reached = 0
    for name, tensor in sorted(tensors.items(), key=lambda item: (item[1].begin,
                                                                    item[1].end)):
        if tensor.begin != reached:
            what = "overlaps the one before it" if tensor.begin < reached else \
                "leaves a gap after the one before it"
            raise InputError(f"{path}: tensor {quote(name)} {what} (it starts at byte "
                             f"{tensor.begin:,}, the data so far ends at {reached:,}); refused")
        reached = tensor.end
    if reached != data_size:
        raise InputError(f"{path}: {data_size - reached:,} bytes follow the last tensor; not "
                         f"a safetensors file as safetensors writes them; refused")
    return tensors


def _read_safetensors(path: Path, tensors: dict[str, _Tensor], data_start: int,
                      wanted: list[str]) -> dict[str, Any]:
    import numpy as np
    from safetensors import safe_open

    check_regular(path, "weights file")
    arrays = {}
    plain = [key for key in wanted if tensors[key].dtype != "BF16"]
    try:
        if plain:
            with safe_open(str(path), framework="np") as handle:
                for key in plain:
                    arrays[key] = handle.get_tensor(key)
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
        raise InputError(f"{path}: cannot read the safetensors file: "
                         f"{_library_text(error)}") from None
    bf16 = [key for key in wanted if tensors[key].dtype == "BF16"]
    if bf16:
        with open_regular(path, "weights file") as handle:
            for key in bf16:
                tensor = tensors[key]
                handle.seek(data_start + tensor.begin)
                raw = handle.read(tensor.end - tensor.begin)
                if len(raw) != tensor.end - tensor.begin:
                    raise InputError(f"{path}: the safetensors file changed while it was "
                                     f"read")
                # bfloat16 is the top half of a float32.
                bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
                arrays[key] = bits.view(np.float32).reshape(tensor.shape)
    for key, array in arrays.items():
        if array.shape != tensors[key].shape:
            raise InputError(f"{path}: the safetensors file changed while it was read")
    return arrays


def _open_torch(path: Path) -> _Checkpoint:
    try:
        import torch
    except ImportError:
        raise InputError(f"{path}: a PyTorch pickle; install torch (it is read with "
                         f"weights_only=True) or convert it to .safetensors") from None
    check_regular(path, "weights file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # an UnpicklingError for anything but tensors, or a corrupt file
        raise InputError(f"{path}: cannot read the PyTorch checkpoint with "
                         f"weights_only=True: {_library_text(error)}") from None
    state = _state_dict_of(loaded, torch, path)
    arrays = {key: _torch_array(value, key, torch, path) for key, value in state.items()}

    def read(wanted: list[str]) -> dict[str, Any]:
        return {key: arrays[key] for key in wanted}

    return _Checkpoint({key: tuple(array.shape) for key, array in arrays.items()}, read)


def _state_dict_of(loaded: Any, torch, path: Path) -> dict[str, Any]:
    """The {name: tensor} mapping torch.load returned, or the one a training checkpoint
    keeps under 'state_dict' or 'model' (timm's and most training loops' keys)."""
    if not isinstance(loaded, Mapping):
        raise InputError(f"{path}: holds {type(loaded).__name__}, not a state dict (a "
                         f"mapping of names to tensors)")

    def tensors(mapping: Mapping) -> dict[str, Any]:
        return {key: value for key, value in mapping.items() if isinstance(value, torch.Tensor)}

    found = tensors(loaded)
    if not found:
        for wrapper in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper), Mapping) and tensors(loaded[wrapper]):
                found = tensors(loaded[wrapper])
                break
    if not found:
        raise InputError(f"{path}: holds no tensors, at its top level or under "
                         f"'state_dict' or 'model'; not a state dict")
    for key in found:
        if not isinstance(key, str):
            raise InputError(f"{path}: a state dict key is {type(key).__name__}, not text")
    return found


def _torch_array(value, key: str, torch, path: Path):
    where = f"{path}: {quote(key)}"
    if value.layout != torch.strided or value.is_quantized:
        raise InputError(f"{where} is a sparse or quantized tensor; only dense float and "
                         f"integer tensors are read")
    if value.dtype.is_complex or value.dtype == torch.bool:
        raise InputError(f"{where} holds {value.dtype} values; only float and integer "
                         f"tensors are read")
    value = value.detach()
    if value.dtype.is_floating_point and value.dtype not in (torch.float16, torch.float32,
                                                             torch.float64):
        value = value.float()  # bfloat16 and float8, which numpy lacks
    try:
        return value.numpy()
    except (TypeError, RuntimeError) as error:
        raise InputError(f"{where}: cannot be read as an array: "
                         f"{_library_text(error)}") from None


# --- mapping onto our layers ---------------------------------------------------------

@dataclass(frozen=True)
class _Layer:
    """What the mapping needs of one of our layers."""

    name: str
    kind: str
    weights: tuple[tuple[str, tuple[int, ...]], ...]  # (Keras weight name, shape)
    fused: bool  # a conv with its activation inside it: two PyTorch modules
    input_shape: tuple  # without the batch axis


@dataclass(frozen=True)
class _Slot:
    """One of our layers with weights and the checkpoint tensors that fill it."""

    layer: str
    module: str  # features.3, classifier.0, pre_logits.fc1, head.fc
    kind: str  # "conv", "batch norm", "dense"
    keys: tuple[str, ...]  # in the layer's weight order
    shapes: tuple[tuple[int, ...], ...]  # what the tensors must be, in PyTorch's layout
    transforms: tuple[Callable, ...]  # PyTorch array -> Keras array


def _layers_of(plan_or_model) -> tuple[str, list[_Layer]]:
    """The model's name and its layers, from a Plan (no Keras) or a Keras model."""
    from .plan import Plan

    if isinstance(plan_or_model, Plan):
        return plan_or_model.spec.name, _plan_layers(plan_or_model)
    layers = []
    for layer in plan_or_model.layers:
        try:
            shape = tuple(layer.input.shape[1:])
        except (AttributeError, ValueError):  # the input layer has no input
            shape = ()
        activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
        kind = type(layer).__name__
        layers.append(_Layer(layer.name, kind,
                             tuple((w.name, tuple(int(d) for d in w.shape))
                                   for w in layer.weights),
                             kind == "Conv2D" and activation != "linear", shape))
    return plan_or_model.name, layers


def _plan_layers(plan) -> list[_Layer]:
    layers, before = [], ()
    for row in plan.layers:
        config, weights = row.config, ()
        if row.kind == "Conv2D":
            weights = (("kernel", (*config["kernel_size"], before[-1], config["filters"])),
                       ("bias", (config["filters"],)))
        elif row.kind == "BatchNormalization":
            weights = tuple((name, (before[-1],)) for name in
                            ("gamma", "beta", "moving_mean", "moving_variance"))
        elif row.kind == "Dense":
            weights = (("kernel", (before[0], config["units"])), ("bias", (config["units"],)))
        fused = row.kind == "Conv2D" and config.get("activation", "linear") != "linear"
        layers.append(_Layer(row.name, row.kind, weights, fused, tuple(before)))
        before = row.output_shape
    return layers


def _unsupported(layer: _Layer, source: str, why: str) -> InputError:
    return InputError(f"{source}: layer {layer.name} ({layer.kind}) {why}; a PyTorch VGG "
                      f"checkpoint cannot fill it")


def _keys(layer: _Layer, module: str, source: str) -> tuple[str, ...]:
    keys = []
    for name, _ in layer.weights:
        if name not in TORCH_NAMES:
            raise _unsupported(layer, source, f"has a weight named {quote(name)}")
        keys.append(f"{module}.{TORCH_NAMES[name]}")
    return tuple(keys)


def _conv_slot(layer: _Layer, module: str, source: str) -> _Slot:
    shapes, transforms = [], []
    for _, shape in layer.weights:
        if len(shape) == 4:  # (H, W, in, out) <- (out, in, H, W)
            shapes.append((shape[3], shape[2], shape[0], shape[1]))
            transforms.append(lambda a: _out_last(a, (2, 3, 1, 0)))
        else:
            shapes.append(shape)
            transforms.append(_copy)
    return _Slot(layer.name, module, "conv", _keys(layer, module, source), tuple(shapes),
                 tuple(transforms))


def _batch_norm_slot(layer: _Layer, module: str, source: str) -> _Slot:
    return _Slot(layer.name, module, "batch norm", _keys(layer, module, source),
                 tuple(shape for _, shape in layer.weights),
                 tuple(_copy for _ in layer.weights))


def _dense_slot(layer: _Layer, module: str, source: str, spatial: tuple | None,
                as_conv: bool) -> _Slot:
    """A dense layer from a Linear (``as_conv`` False) or from timm's conv over the whole
    map. ``spatial`` is the (H, W, C) map flattened into this layer, if it is the first
    dense layer after ``flatten``: PyTorch flattened it as (C, H, W)."""
    shapes, transforms = [], []
    for _, shape in layer.weights:
        if len(shape) != 2:
            shapes.append(shape)
            transforms.append(_copy)
            continue
        inputs, units = shape
        height, width, channels = spatial if spatial and math.prod(spatial) == inputs \
            else (1, 1, inputs)
        # PyTorch's weight as (units, C, H, W), its input order, to Keras' (H, W, C, units).
        torch_shape = (units, channels, height, width)
        shapes.append(torch_shape if as_conv else (units, inputs))
        transforms.append(lambda a, s=torch_shape, n=inputs:
                          _out_last(a.reshape(s), (2, 3, 1, 0)).reshape(n, -1))
    return _Slot(layer.name, module, "dense", _keys(layer, module, source), tuple(shapes),
                 tuple(transforms))


def _copy(array):
    return array.copy()


def _out_last(array, axes: tuple[int, ...]):
    """``array.transpose(axes)`` as a new array, where ``axes`` moves PyTorch's output
    axis (0) to the end, as Keras keeps it. Copied a block of output channels at a time:
    one transposed copy of VGG16's fc1 (4096 x 25088) thrashes the cache for 3 s, in
    blocks it takes a fifth of that."""
    import numpy as np

    out = np.empty(tuple(array.shape[axis] for axis in axes), array.dtype)
    for start in range(0, array.shape[0], TRANSPOSE_BLOCK):
        out[..., start:start + TRANSPOSE_BLOCK] = \
            array[start:start + TRANSPOSE_BLOCK].transpose(axes)
    return out


def _slots(layers: list[_Layer], layout: str, source: str
           ) -> tuple[list[_Slot], list[_Slot], int]:
    """Our layers with weights, in order, each with its place in the layout: the
    features' slots, the head's, and how many features.N modules our conv part spans."""
    features, head = [], []
    index, hidden, spatial, in_head = 0, 0, None, False
    for layer in layers:
        if layer.kind == "InputLayer":
            continue
        in_head = in_head or layer.kind in HEAD_KINDS
        if not in_head:
            if layer.kind == "Conv2D":
                features.append(_conv_slot(layer, f"features.{index}", source))
                index += 2 if layer.fused else 1
            elif layer.kind == "BatchNormalization":
                features.append(_batch_norm_slot(layer, f"features.{index}", source))
                index += 1
            elif layer.weights:
                raise _unsupported(layer, source, "has weights where VGG has none")
            else:  # a pool, activation, LRN or dropout: a module without weights
                index += 1
            continue
        if layer.kind == "Flatten":
            spatial = layer.input_shape if len(layer.input_shape) == 3 else None
        elif layer.kind == "Dense":
            if layer.name == "predictions":
                module = "head.fc" if layout == TIMM else f"classifier.{3 * hidden}"
            elif match := re.fullmatch(r"fc([1-9][0-9]*)", layer.name):
                hidden += 1
                number = int(match.group(1))
                module = f"pre_logits.fc{number}" if layout == TIMM \
                    else f"classifier.{3 * (number - 1)}"
            else:
                raise _unsupported(layer, source, "is a dense layer named neither fcN nor "
                                                  "predictions")
            head.append(_dense_slot(layer, module, source, spatial,
                                    layout == TIMM and module != "head.fc"))
            spatial = None
        elif layer.weights:
            raise _unsupported(layer, source, "has weights where VGG's head has none")
    return features, head, index


def _layout(shapes: Mapping[str, tuple], source: str) -> str:
    if not shapes:
        raise InputError(f"{source}: holds no tensors")
    if any(key.startswith(("pre_logits.", "head.fc.")) for key in shapes):
        return TIMM
    if any(key.startswith(("features.", "classifier.")) for key in shapes):
        return TORCHVISION
    first = ", ".join(quote(key) for key in sorted(shapes)[:3])
    raise InputError(f"{source}: not a VGG state dict in torchvision's or timm's layout (no "
                     f"features.N or classifier.N tensors); its first keys are {first}")


def _describe_torch(kind: str, shape: tuple) -> str:
    if kind == "conv" and len(shape) == 4:
        return f"a {shape[2]}x{shape[3]} conv, {shape[1]} to {shape[0]} channels"
    if kind == "batch norm" and len(shape) == 1:
        return f"a batch norm of {shape[0]} channels"
    return f"a layer with weights of shape {format_shapes([shape])}"


def _check_structure(features: list[_Slot], end: int, has_head: bool,
                     shapes: Mapping[str, tuple], name: str, source: str) -> None:
    """Refuse a model whose conv and batch-norm layers do not sit where the checkpoint's
    do, naming the first layer that differs. Checkpoint modules past our conv part are
    ignored when the model has no head (a model cut after a tap)."""
    stored: dict[int, dict[str, tuple]] = {}
    for key, shape in shapes.items():
        if match := FEATURE_KEY.fullmatch(key):
            stored.setdefault(int(match.group(1)), {})[match.group(2)] = tuple(shape)
    theirs: dict[int, tuple[str, tuple]] = {}
    for index, tensors in stored.items():
        weight = tensors.get("weight", ())
        if {"running_mean", "running_var", "num_batches_tracked"} & set(tensors):
            kind = "batch norm"
        else:
            kind = {4: "conv", 1: "batch norm"}.get(len(weight), "other")
        theirs[index] = (kind, weight)
    ours = {int(slot.module.split(".")[1]): slot for slot in features}
    indices = sorted(set(ours) | {i for i in theirs if has_head or i < end})
    for index in indices:
        slot, (kind, weight) = ours.get(index), theirs.get(index, ("", ()))
        if slot and slot.kind == kind:
            continue
        if slot:
            where = f"at {slot.layer}"
            detail = (f"{slot.layer} would be features.{index}, "
                      f"{_describe_torch(slot.kind, slot.shapes[0])}; the checkpoint has "
                      f"{_describe_torch(kind, weight) if kind else 'no weights'} there")
            later = sorted(i for i in theirs if i > index)
            if not kind:
                detail += (f" (its next layer with weights: features.{later[0]}, "
                           f"{_describe_torch(*theirs[later[0]])})" if later else
                           " (nor after it)")
        else:
            before = [s for i, s in ours.items() if i < index]
            after = [s for i, s in ours.items() if i > index]
            where = f"after {before[-1].layer}" if before else f"before {after[0].layer}"
            detail = (f"the checkpoint's features.{index} is {_describe_torch(kind, weight)}, "
                      f"which the model lacks")
            if after:
                detail += (f" (its next layer with weights, {after[0].layer}, would be "
                           f"{after[0].module})")
        raise InputError(f"{source}: checkpoint and model '{name}' differ {where}, nothing "
                         f"loaded: {detail}")



def _fit(shapes: Mapping[str, tuple], plan_or_model, source: str,
         skipped: list[str] | None) -> list[_Slot]:
    """The slots of the model's layers with weights, each checked against the
    checkpoint's shapes: all of them, or (given ``skipped``) those that fit."""
    layout = _layout(shapes, source)
    name, layers = _layers_of(plan_or_model)
    features, head, end = _slots(layers, layout, source)
    _check_structure(features, end, bool(head), shapes, name, source)
    problems, chosen = [], []
    for slot in features + head:
        got = [shapes.get(key) for key in slot.keys]
        if all(shape is None for shape in got):
            problems.append(f"{slot.layer} ({slot.module}) missing from the file (model "
                            f"needs {format_shapes(slot.shapes)})")
        elif None in got:
            problems.append(f"{slot.layer} ({slot.module}) lacks "
                            f"{quote(slot.keys[got.index(None)])} in the file")
        elif [tuple(shape) for shape in got] != list(slot.shapes):
            problems.append(f"{slot.layer} ({slot.module}) has "
                            f"{clip(format_shapes(got), 120)} in the file, the model needs "
                            f"{format_shapes(slot.shapes)}")
        else:
            chosen.append(slot)
    settle_mismatches(f"{source}: weights ({layout}'s layout) do not fit model '{name}'",
                      problems, bool(chosen), skipped)
    return chosen


def _convert(chosen: list[_Slot], arrays: Mapping[str, Any], source: str) -> dict[str, list]:
    """{layer: [float32 arrays in Keras order]}; InputError for values float32 cannot
    hold (inf, nan, beyond 3.4e38)."""
    import numpy as np

    result = {}
    for slot in chosen:
        converted = []
        for key, transform in zip(slot.keys, slot.transforms):
            with np.errstate(over="ignore", invalid="ignore"):
                array = np.asarray(arrays[key], dtype=np.float32)
            if not np.isfinite(array).all():
                raise InputError(f"{source}: {quote(key)} holds values that are not finite "
                                 f"float32 numbers (inf, nan or beyond 3.4e38); nothing loaded")
            converted.append(transform(array))
        result[slot.layer] = converted
    return result
