"""Weights files from strangers: compressed-chunk bombs and storage that costs more than
its size, legacy name lists that repeat or flood, messages that would grow without
bound, and corrupt files, links and archives that must fail as one line, never as a
traceback. Each family is tested with more cases than the one that was reported; what
costs memory or time runs in a fresh interpreter under a timeout."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

import vggspec
from conftest import ROOT, run_cli
from vggspec import weights
from vggspec.weights import load_weights

TINY = "name: tiny\ninput: {shape: [16, 16, 3]}\nblocks: [[8, max]]\nhead: {type: none}\n"
# fc1's kernel is 512x2048 float32 (4 MiB), room for bombs that fit its chunk.
WIDE = ("name: wide\ninput: {shape: [16, 16, 1]}\nblocks: [[8, max]]\n"
        "head: {type: dense, units: [2048], classes: 2}\n")
KEYS = {"block1_conv1": "conv2d", "fc1": "dense", "predictions": "dense_1"}


@pytest.fixture(scope="module")
def tiny():
    return vggspec.build_model(vggspec.spec_from_text(TINY))


def arrays(model, seed=0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    return {layer.name: [rng.standard_normal(w.shape).astype("float32")
                         for w in layer.weights] for layer in model.layers if layer.weights}


def keras3_file(path: Path, layers: dict[str, list], options=None, special=None) -> Path:
    """A Keras 3 ``layers/<key>/vars/<i>`` file. ``options`` maps 'layer/i' to
    create_dataset keywords; ``special`` maps it to a function(group, name, array)
    that writes the dataset itself."""
    options, special = options or {}, special or {}
    with h5py.File(path, "w") as handle:
        for name, values in layers.items():
            group = handle.create_group(f"layers/{KEYS[name]}/vars")
            for index, value in enumerate(values):
                key = f"{name}/{index}"
                if key in special:
                    special[key](group, str(index), value)
                else:
                    group.create_dataset(str(index), data=value, **options.get(key, {}))
    return path


def legacy_file(path: Path, layers: dict[str, list], layer_names=None,
                weight_names=None) -> Path:
    """A legacy layout file: ``layer_names`` on the root, a group per layer with
    ``weight_names`` (either may be overridden, for one layer or all)."""
    with h5py.File(path, "w", libver="latest") as handle:
        handle.attrs["layer_names"] = [n.encode() for n in layers] if layer_names is None \
            else layer_names
        for name, values in layers.items():
            group = handle.create_group(name)
            names = [f"{name}_w{i}".encode() for i in range(len(values))]
            for wname, value in zip(names, values):
                group.create_dataset(wname.decode(), data=value)
            group.attrs["weight_names"] = names if weight_names is None else weight_names
    return path


def refused(model, path: Path) -> str:
    """The InputError message for loading ``path``, checked to be one clean line naming
    the file, with nothing loaded."""
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(vggspec.InputError) as caught:
        load_weights(model, path)
    message = str(caught.value)
    assert "\n" not in message and message.isprintable(), repr(message)
    assert message.startswith(f"{path}: ")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    return message


# --- what costs memory or time: made once, loaded in one fresh interpreter -------------

MEASURE = """
import json, resource, sys
import vggspec
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for spec, path in json.loads(sys.argv[1]):
    model = vggspec.build_model(vggspec.spec_from_text(spec))
    try:
        vggspec.load_weights(model, path)
        outcome = "loaded"
    except vggspec.InputError as error:
        outcome = str(error)
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) // 1024
    print(json.dumps([outcome, grew]), flush=True)
"""


@pytest.fixture(scope="module")
def costly(tmp_path_factory) -> dict[str, dict]:
    """Files that cost memory or time to read, loaded one after another in a fresh
    interpreter under a timeout (one, because starting TensorFlow is most of the cost):
    name -> {path, outcome (message or "loaded"), grew (MiB peak memory had grown by,
    cumulative: peak memory only grows), and what a test needs to know of the file}."""
    folder = tmp_path_factory.mktemp("costly")
    wide = arrays(vggspec.build_model(vggspec.spec_from_text(WIDE)))
    tiny = arrays(vggspec.build_model(vggspec.spec_from_text(TINY)))
    stream = gzip_stream(1024)
    files = {
        "stored": (TINY, keras3_file(folder / "stored.h5", tiny, special={
            "block1_conv1/0": direct_chunk(stream)}), {"stream": len(stream)}),
        # Within fc1's 4 MiB chunk as stored, 256 times that once inflated.
        "inflated": (WIDE, keras3_file(folder / "inflated.h5", wide, special={
            "fc1/0": direct_chunk(stream)}), {}),
        "many": (WIDE, keras3_file(folder / "many.h5", wide, special={
            "fc1/0": lambda group, name, value: group.create_dataset(
                name, shape=value.shape, dtype="float32", chunks=(1, 1))}), {}),
        "repeated": (TINY, legacy_file(folder / "repeated.h5", tiny,
                                       layer_names=np.array([b"block1_conv1"] * 600),
                                       weight_names=np.array([b"block1_conv1_w0"] * 600)), {}),
        "numerous": (TINY, legacy_file(folder / "numerous.h5", tiny, layer_names=[
            b"l%d" % i for i in range(9999)] + [b"block1_conv1"]), {}),
        "shared": (TINY, shared_string_file(folder / "shared.h5", 10_000, 100_000), {}),
        "looping": (TINY, legacy_file(folder / "looping.h5", tiny,
                                      layer_names=[b"block1_conv1", b"x" * 40]), {}),
        "huge": (TINY, legacy_file(folder / "huge.h5", tiny, layer_names=[b"block1_conv1"],
                                   weight_names=[b"block1_conv1_w0", b"block1_conv1_w1"]), {}),
    }
    files["looping"][2]["heap"] = heap_object(files["looping"][1], 0, 0)
    files["huge"][2]["heap"] = heap_object(files["huge"][1], 2, 1 << 30)
    result = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(
        [[spec, str(path)] for spec, path, _ in files.values()])], cwd=ROOT,
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    return {name: {"path": path, "outcome": outcome, "grew": grew, **extra}
            for (name, (_, path, extra)), (outcome, grew) in zip(files.items(), outcomes)}


# --- 1. storage that costs more than its size: refused from the header ----------------

def gzip_stream(inflated_mib: int) -> bytes:
    """A zlib stream of ``inflated_mib`` MiB of zeros, about a thousand times smaller:
    one MiB deflated after a full flush is the same bytes every time, so it is made once
    and repeated."""
    zeros = bytes(1 << 20)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(inflated_mib):
        checksum = zlib.adler32(zeros, checksum)
    return b"\x78\xda" + piece * inflated_mib + deflater.flush() + checksum.to_bytes(4, "big")


def test_the_bomb_streams_are_real():
    assert zlib.decompress(gzip_stream(3)) == bytes(3 << 20)


def direct_chunk(stream: bytes):
    """A writer for ``special``: one gzip chunk as big as the dataset, holding ``stream``."""
    def write(group, name, value):
        dataset = group.create_dataset(name, shape=value.shape, dtype=value.dtype,
                                       chunks=value.shape, compression="gzip")
        dataset.id.write_direct_chunk((0,) * value.ndim, stream)
    return write


def test_bombs_and_costly_storage_are_refused_in_bounded_memory_and_time(costly):
    """Before this was checked, the first file (1 MB) took 1 GiB and 4 s to load, the
    second (1 MB) 1 GiB and 4 s, the third (37 KB) 3.8 GiB and 9 s."""
    stored, inflated, many = costly["stored"], costly["inflated"], costly["many"]
    assert stored["outcome"] == (f"{stored['path']}: '/layers/conv2d/vars/0' stores "
                                 f"{stored['stream']:,} bytes in 1 chunk for 864 bytes of "
                                 f"data; refused")
    assert inflated["outcome"] == (f"{inflated['path']}: '/layers/dense/vars/0' has a gzip "
                                   f"chunk that inflates past its 4,194,304 bytes; refused")
    assert many["outcome"] == (f"{many['path']}: '/layers/dense/vars/0' is stored in "
                               f"1,048,576 chunks, more than the 65,536 read; refused")
    assert stored["stream"] < 4 << 20  # fits fc1's chunk as stored
    assert max(f["path"].stat().st_size for f in (stored, inflated, many)) < 2 << 20
    assert many["grew"] < 64  # MiB, over all three


@pytest.mark.parametrize("options, message", [
    ({"compression": "lzf"}, "is compressed with lzf; only gzip, shuffle and fletcher32 "
                             "are read"),
    ({"scaleoffset": 4}, "is compressed with scale-offset; only gzip, shuffle and "
                         "fletcher32 are read"),
    ({"compression": 32015, "allow_unknown_filter": True},
     "is compressed with filter 32015; only gzip, shuffle and fletcher32 are read"),
    ({"chunks": (3, 3, 3, 4096), "maxshape": (3, 3, 3, None)},
     "is stored in chunks of (3,3,3,4096), larger than its shape (3,3,3,8); refused"),
    ({"chunks": (3, 3, 4, 1), "maxshape": (3, 3, None, 8)},
     "is stored in chunks of (3,3,4,1), larger than its shape (3,3,3,8); refused"),
])
def test_unread_filters_and_chunks_larger_than_the_data_are_refused(tiny, tmp_path,
                                                                  options, message):
    options = {"shape": (3, 3, 3, 8), "dtype": "float32", **options}
    path = keras3_file(tmp_path / "w.h5", arrays(tiny), special={
        "block1_conv1/0": lambda group, name, value: group.create_dataset(name, **options)})
    assert refused(tiny, path) == f"{path}: '/layers/conv2d/vars/0' {message}"


def pipeline_writer(*filters):
    """A writer for ``special`` whose filter pipeline is ``filters``, in that order."""
    def write(group, name, value):
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk(value.shape)
        for code in filters:
            {1: lambda: plist.set_deflate(6), 2: plist.set_shuffle,
             3: plist.set_fletcher32, 5: lambda: plist.set_filter(5)}[code]()
        group.create_dataset(name, data=value, dcpl=plist)
    return write


@pytest.mark.parametrize("filters, message", [
    ((3, 1), "applies the filters fletcher32, gzip; only shuffle, gzip, fletcher32, each at "
             "most once in that order, are read"),
    ((1, 1), "applies the filters gzip, gzip; only shuffle, gzip, fletcher32, each at most "
             "once in that order, are read"),
    ((1, 2), "applies the filters gzip, shuffle; only shuffle, gzip, fletcher32, each at "
             "most once in that order, are read"),
    ((5,), "is compressed with n-bit; only gzip, shuffle and fletcher32 are read"),
])
def test_filter_pipelines_out_of_order_or_repeated_are_refused(tiny, tmp_path, filters,
                                                               message):
    path = keras3_file(tmp_path / "w.h5", arrays(tiny),
                       special={"block1_conv1/0": pipeline_writer(*filters)})
    assert refused(tiny, path) == f"{path}: '/layers/conv2d/vars/0' {message}"


def test_a_gzip_chunk_that_inflates_a_little_too_far_is_refused(tiny, tmp_path):
    stream = zlib.compress(bytes(865))  # one byte more than the 864 of the chunk
    path = keras3_file(tmp_path / "w.h5", arrays(tiny),
                       special={"block1_conv1/0": direct_chunk(stream)})
    assert refused(tiny, path) == (f"{path}: '/layers/conv2d/vars/0' has a gzip chunk that "
                                   f"inflates past its 864 bytes; refused")


@pytest.mark.parametrize("compression", ["gzip", None])
def test_one_chunk_stored_far_larger_than_its_data_is_refused(tiny, tmp_path, compression):
    def write(group, name, value):  # two chunks of 432 bytes; one stored in 900
        dataset = group.create_dataset(name, shape=value.shape, dtype=value.dtype,
                                       chunks=(3, 3, 3, 4), compression=compression,
                                       fletcher32=True)
        dataset.id.write_direct_chunk((0, 0, 0, 0), bytes(900))

    path = keras3_file(tmp_path / "w.h5", arrays(tiny), special={"block1_conv1/0": write})
    assert refused(tiny, path) == (f"{path}: '/layers/conv2d/vars/0' stores a chunk in 900 "
                                   f"bytes, more than its 432 bytes of data; refused")


@pytest.mark.parametrize("options", [
    {"compression": "gzip", "shuffle": True, "fletcher32": True, "chunks": (2, 3, 1, 5)},
    {"compression": "gzip", "compression_opts": 9, "chunks": True},
    {"shuffle": True}, {"fletcher32": True, "chunks": (1, 1, 1, 8)},
    {"chunks": (3, 3, 3, 8)}, {"maxshape": (None, None, None, None)},
])
def test_storage_h5py_writes_by_name_still_loads(tiny, tmp_path, options):
    values = arrays(tiny, seed=3)
    for layout in ("keras3", "legacy"):
        path = tmp_path / f"{layout}.h5"
        if layout == "keras3":
            keras3_file(path, values, options={"block1_conv1/0": options,
                                               "block1_conv1/1": {"compression": "gzip"}})
        else:
            with h5py.File(path, "w") as handle:
                handle.attrs["layer_names"] = np.array([b"block1_conv1"])
                group = handle.create_group("block1_conv1")
                group.attrs["weight_names"] = np.array([b"block1_conv1/kernel:0",
                                                        b"block1_conv1/bias:0"])
                group.create_dataset("block1_conv1/kernel:0", data=values["block1_conv1"][0],
                                     **options)
                group.create_dataset("block1_conv1/bias:0", data=values["block1_conv1"][1])
        load_weights(tiny, path)
        for got, expected in zip(tiny.get_layer("block1_conv1").get_weights(),
                                 values["block1_conv1"]):
            np.testing.assert_array_equal(got, expected)


def test_a_compact_dataset_loads(tiny, tmp_path):
    values = arrays(tiny, seed=5)

    def compact(group, name, value):
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        group.create_dataset(name, data=value, dcpl=plist)

    path = keras3_file(tmp_path / "w.h5", values, special={"block1_conv1/0": compact})
    load_weights(tiny, path)
    np.testing.assert_array_equal(tiny.get_layer("block1_conv1").get_weights()[0],
                                  values["block1_conv1"][0])


# --- 2. legacy names: bounded, never repeated, only the model's layers opened -------------

def test_repeated_and_numerous_names_are_refused_at_once(costly):
    """Before, the first file (19 KB) took 38 s to refuse, with a 51,000-character
    message: every repeat of a layer name opened its group and every repeat of a weight
    name its dataset (a version of it with variable-length names, 300 KB, ran for over
    two minutes)."""
    repeated, numerous = costly["repeated"], costly["numerous"]
    assert repeated["path"].stat().st_size < 64 << 10
    assert repeated["outcome"] == (f"{repeated['path']}: layer_names of '/' lists "
                                   f"'block1_conv1' twice; refused")
    assert numerous["outcome"] == "loaded"  # 9,999 names of layers the model lacks


def shared_string_file(path: Path, count: int, size: int) -> Path:
    """A legacy file whose layer_names are ``count`` variable-length strings that all
    refer to one string of ``size`` bytes in the file's heap (h5py writes each string
    once; the references are rewritten in place)."""
    names = [b"B" * size] + [b"n%05d" % i for i in range(count - 1)]
    legacy_file(path, {}, layer_names=names)
    raw = bytearray(path.read_bytes())
    length = size.to_bytes(4, "little")
    at = raw.find(length)
    while raw[at + 16:at + 20] != (6).to_bytes(4, "little"):  # the next is 'n00000'
        at = raw.find(length, at + 1)
    for index in range(1, count):
        raw[at + 16 * index:at + 16 * (index + 1)] = raw[at:at + 16]
    path.write_bytes(bytes(raw))
    return path


def heap_object(path: Path, number: int, size: int) -> tuple[int, int]:
    """Set the size of object ``number`` (0: the free space) of the file's first global
    heap collection; returns where the collection starts and the bytes left from that
    object to its end."""
    raw = bytearray(path.read_bytes())
    start = raw.find(b"GCOL")
    end = start + int.from_bytes(raw[start + 8:start + 16], "little")
    place = start + 16
    while int.from_bytes(raw[place:place + 2], "little") != number:
        old = int.from_bytes(raw[place + 8:place + 16], "little")
        place += 16 + -(-old // 8) * 8
    raw[place + 8:place + 16] = size.to_bytes(8, "little")
    path.write_bytes(bytes(raw))
    return start, end - place


def test_names_in_variable_length_strings_are_read_within_bounds(costly):
    """Before, the first file (0.5 MB) took 1.9 GB to read: HDF5 copies a string once
    per reference. The second (7 KB) made HDF5 loop for ever: its heap's free space
    claims 0 bytes. The third claims a string of 1 GiB."""
    shared, looping, huge = costly["shared"], costly["looping"], costly["huge"]
    assert shared["path"].stat().st_size < 1 << 20
    assert shared["outcome"] == (
        f"{shared['path']}: layer_names of '/' lists 10,000 variable-length names, each of "
        f"which may be the file's longest string (100,000 bytes): too much to read; refused")
    (at, left), path = looping["heap"], looping["path"]
    assert looping["outcome"] == (f"{path}: the string heap at byte {at:,} is corrupt (an "
                                  f"object of 0 bytes where {left:,} remain); refused")
    (at, left), path = huge["heap"], huge["path"]
    assert huge["outcome"] == (f"{path}: the string heap at byte {at:,} is corrupt (an "
                               f"object of 1,073,741,824 bytes where {left:,} remain); refused")
    assert huge["grew"] < 64  # MiB, over every costly file


def test_a_file_full_of_heap_signatures_is_refused_in_bounded_time(tiny, tmp_path):
    path = legacy_file(tmp_path / "w.h5", arrays(tiny))  # variable-length names
    with h5py.File(path, "a") as handle:
        handle["filler"] = np.frombuffer(b"GCOL" * (1 << 20), dtype="uint8")
    assert refused(tiny, path) == (f"{path}: holds more than 1,048,576 variable-length "
                                   f"strings or string heaps; refused")


def test_variable_length_names_beside_long_text_still_load(tiny, tmp_path):
    values = arrays(tiny, seed=9)
    path = legacy_file(tmp_path / "w.h5", values, layer_names=["block1_conv1", "fc1"])
    with h5py.File(path, "a") as handle:
        handle.attrs["model_config"] = "{" + " " * 200_000 + "}"  # variable-length too
    load_weights(tiny, path)
    np.testing.assert_array_equal(tiny.get_layer("block1_conv1").get_weights()[0],
                                  values["block1_conv1"][0])


@pytest.mark.parametrize("layer_names, weight_names, message", [
    ([b"block1_conv1", b"x", b"block1_conv1"], None,
     "layer_names of '/' lists 'block1_conv1' twice; refused"),
    ([b"n%d" % i for i in range(10_001)], None,
     "layer_names of '/' lists 10,001 names, more than the 10,000 read; refused"),
    (None, [b"block1_conv1_w0", b"block1_conv1_w1", b"block1_conv1_w0"],
     "weight_names of '/block1_conv1' lists 'block1_conv1_w0' twice; refused"),
    (None, [b"w%d" % i for i in range(17)],
     "weight_names of '/block1_conv1' lists 17 names, more than the 16 read; refused"),
    (None, np.array([b"k" * 1025]),
     "weight_names of '/block1_conv1' holds names of 1,025 bytes, more than the 1,024 read; "
     "refused"),
    (None, [b"k" * 2000],
     "weight_names of '/block1_conv1' holds a name of 2,000 bytes, more than the 1,024 "
     "read; refused"),
    (np.array([1, 2]), None, "layer_names of '/' must be a list of names; got int64 values "
                             "of shape (2,)"),
    (np.array([[b"a", b"b"], [b"c", b"d"]]), None,
     "layer_names of '/' must be a list of names; got text of shape (2,2)"),
    (b"block1_conv1", None, "layer_names of '/' must be a list of names; got text of "
                            "shape ()"),
    (None, np.array([0.5]), "weight_names of '/block1_conv1' must be a list of names; got "
                            "float64 values of shape (1,)"),
    (None, [b"block1_conv1_w0", b"missing\x1b[2J" + b"m" * 900],
     "weight_names of '/block1_conv1' lists 'missing\\x1b[2J" + "m" * 23 + "...', which is "
     "not in the file"),
    (None, [b"block1_conv1_w0", b"/"], "'/' is not a dataset; refused"),
    (None, [b"block1_conv1_w0", b"../block1_conv1_w1"],
     "weight_names of '/block1_conv1' lists '../block1_conv1_w1', which is not in the file"),
])
def test_legacy_name_lists_are_checked(tiny, tmp_path, layer_names, weight_names, message):
    path = legacy_file(tmp_path / "w.h5", arrays(tiny), layer_names, weight_names)
    assert refused(tiny, path) == f"{path}: {message}"


@pytest.mark.parametrize("layer_names, message", [
    ([], "weights do not fit model 'tiny', nothing loaded: block1_conv1 missing from the "
         "file (model needs (3,3,3,8) (8,))"),
    (np.array([], dtype="float64"), "weights do not fit model 'tiny', nothing loaded: "
                                    "block1_conv1 missing from the file (model needs "
                                    "(3,3,3,8) (8,))"),
    (h5py.Empty("float32"), "weights do not fit model 'tiny', nothing loaded: block1_conv1 "
                            "missing from the file (model needs (3,3,3,8) (8,))"),
    (["unicode", "block1_conv1"], None),
])
def test_empty_or_text_name_lists(tiny, tmp_path, layer_names, message):
    path = legacy_file(tmp_path / "w.h5", arrays(tiny, seed=7), layer_names)
    if message is None:
        load_weights(tiny, path)
        np.testing.assert_array_equal(tiny.get_layer("block1_conv1").get_weights()[1],
                                      arrays(tiny, seed=7)["block1_conv1"][1])
    else:
        assert refused(tiny, path) == f"{path}: {message}"


def test_layers_the_model_lacks_are_never_opened(tiny, tmp_path):
    path = legacy_file(tmp_path / "w.h5", arrays(tiny, seed=8))
    with h5py.File(path, "a") as handle:
        handle.attrs["layer_names"] = [b"block1_conv1", b"loop", b"gone", b"fc1"]
        handle["loop"] = h5py.SoftLink("/loop")
        handle.create_group("fc1")  # no weight_names, and the model has no fc1
    load_weights(tiny, path)
    np.testing.assert_array_equal(tiny.get_layer("block1_conv1").get_weights()[0],
                                  arrays(tiny, seed=8)["block1_conv1"][0])


def test_a_group_without_weight_names_is_refused(tiny, tmp_path):
    path = legacy_file(tmp_path / "w.h5", arrays(tiny))
    with h5py.File(path, "a") as handle:
        del handle["block1_conv1"].attrs["weight_names"]
    assert refused(tiny, path) == (f"{path}: '/block1_conv1' has no weight_names; not a "
                                   f"Keras weights group")


@pytest.mark.parametrize("change, message", [
    (lambda h: [h["layers/conv2d/vars"].create_dataset(str(i), data=[0.0])
                for i in range(2, 1000)],
     "'/layers/conv2d/vars' holds 1,000 variables, more than the 16 a layer may have; "
     "refused"),
    (lambda h: h["layers/conv2d/vars"].move("1", "one"),
     "'/layers/conv2d/vars' has no variable '1' among its 2; refused"),
    (lambda h: (h["layers/conv2d/vars"].__delitem__("1"),
                h["layers/conv2d/vars"].create_group("1")),
     "'/layers/conv2d/vars/1' is not a dataset; refused"),
    (lambda h: (h["layers"].__delitem__("conv2d"),
                h["layers"].create_dataset("conv2d", data=[1])),
     "'/layers/conv2d' is not a group; refused"),
    (lambda h: (h.__delitem__("layers"), h.create_dataset("layers", data=[1])),
     "'/layers' is not a group; refused"),
])
def test_keras3_groups_are_checked(tiny, tmp_path, change, message):
    path = keras3_file(tmp_path / "w.h5", arrays(tiny))
    with h5py.File(path, "a") as handle:
        change(handle)
    assert refused(tiny, path) == f"{path}: {message}"


# --- 3. messages stay short: layers listed up to a count, library text clipped ------------

DEEP = ("name: deep\ninput: {shape: [8, 8, 3]}\nblocks: [[4, 4, 4, 4, 4, 4, 4, 4, 4, 4, "
        "max], [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, max]]\nhead: {type: none}\n")


def test_many_mismatched_layers_are_listed_up_to_a_count(tmp_path, monkeypatch):
    model = vggspec.build_model(vggspec.spec_from_text(DEEP))
    other = vggspec.build_model(vggspec.spec_from_text(DEEP.replace("[4,", "[5,")
                                                       .replace(" 4,", " 5,")))
    other.save_weights(tmp_path / "other.weights.h5")
    monkeypatch.chdir(tmp_path)
    assert refused(model, Path("other.weights.h5")) == (
        "other.weights.h5: weights do not fit model 'deep', nothing loaded: " + "; ".join(
            f"block1_conv{i} has (3,3,{3 if i == 1 else 5},5) (5,) in the file, the model "
            f"needs (3,3,{3 if i == 1 else 4},4) (4,)" for i in range(1, 6))
        + "; and 15 more layers")
    # A long path leaves room for fewer layers, never for none, and the count stays.
    deep = Path("d" * 150, "d" * 149, "other.weights.h5")
    deep.parent.mkdir(parents=True)
    Path("other.weights.h5").rename(deep)
    message = refused(model, deep)
    assert message.endswith(" needs (3,3,4,4) (4,); and 18 more layers")
    assert len(message) == 540


def test_file_shapes_in_a_message_are_clipped(tiny, tmp_path):
    values = arrays(tiny)
    values["block1_conv1"] = [np.zeros((1,) * 30 + (3,), "float32")] * 16
    path = keras3_file(tmp_path / "w.h5", values)
    shapes = " ".join(["(" + "1," * 30 + "3)"] * 16)
    assert refused(tiny, path) == (f"{path}: weights do not fit model 'tiny', nothing "
                                   f"loaded: block1_conv1 has {shapes[:117]}... in the file, "
                                   f"the model needs (3,3,3,8) (8,)")


def test_library_text_is_clipped_to_one_short_line():
    error = KeyError("Unable to open object (object '" + "x" * 5000 + "' doesn't exist)\n"
                     "second line")
    text = weights._library_text(error)
    assert text == "Unable to open object (object '" + "x" * 166 + "..."
    assert len(text) == weights.MAX_LIBRARY_TEXT
    assert weights._library_text(RuntimeError()) == "RuntimeError"


# --- 4. corrupt files, loops and archives: one line, never a traceback ------------------

LOOPS = "is a soft link that loops, or the last of more than 16 on one path; refused"


@pytest.mark.parametrize("link, message", [
    ("self", f"'/block1_conv1' {LOOPS}"),
    ("pair", f"'/block1_conv1' {LOOPS}"),
    ("weight", f"'/block1_conv1/block1_conv1_w0' {LOOPS}"),
    ("chain", f"'/c16' {LOOPS}"),
])
def test_soft_link_loops_are_one_line(tiny, tmp_path, link, message):
    path = legacy_file(tmp_path / "w.h5", arrays(tiny))
    with h5py.File(path, "a") as handle:
        if link == "weight":
            del handle["block1_conv1/block1_conv1_w0"]
            handle["block1_conv1/block1_conv1_w0"] = h5py.SoftLink("/block1_conv1/w")
            handle["block1_conv1/w"] = h5py.SoftLink("/block1_conv1/block1_conv1_w0")
            del handle["block1_conv1/block1_conv1_w1"]
        elif link == "chain":  # 17 soft links in a row, none of them a loop
            handle.move("block1_conv1", "c0")
            handle["block1_conv1"] = h5py.SoftLink("/c1")
            for index in range(1, 17):
                handle[f"c{index}"] = h5py.SoftLink(f"/c{index + 1}" if index < 16 else "c0")
        else:
            del handle["block1_conv1"]
            handle["block1_conv1"] = h5py.SoftLink("/block1_conv1" if link == "self"
                                                   else "/other")
            handle["other"] = h5py.SoftLink("/block1_conv1")
    assert refused(tiny, path) == f"{path}: {message}"


@pytest.mark.parametrize("where", ["layers", "model_weights"])
def test_soft_link_loops_at_the_top_are_one_line(tiny, tmp_path, where):
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as handle:
        handle[where] = h5py.SoftLink(f"/{where}")
    assert refused(tiny, path) == f"{path}: '/{where}' {LOOPS}"


@pytest.mark.parametrize("where, message", [
    ("block1_conv1", "'block1_conv1' links to another file; refused"),
    ("block1_conv1/block1_conv1_w1", "'block1_conv1/block1_conv1_w1' links to another file; "
                                     "refused"),
    ("soft", "'elsewhere' links to another file; refused"),
])
def test_links_to_other_files_on_the_way_are_refused(tiny, tmp_path, where, message):
    path = legacy_file(tmp_path / "w.h5", arrays(tiny))
    with h5py.File(path, "a") as handle:
        if where == "soft":  # a soft link whose target passes through an external link
            handle["elsewhere"] = h5py.ExternalLink("/etc/hostname", "/")
            handle.move("block1_conv1", "real")
            handle["block1_conv1"] = h5py.SoftLink("/elsewhere/block1_conv1")
        else:
            del handle[where]
            handle[where] = h5py.ExternalLink("/dev/zero", "/x")
    assert refused(tiny, path) == f"{path}: {message}"


def test_a_file_with_many_links_costs_no_more_than_its_weights(tiny, tmp_path):
    """Before, every link in the file was visited: 200,000 links (5.6 MB) took 43 s."""
    values = arrays(tiny, seed=11)
    path = legacy_file(tmp_path / "w.h5", values)
    with h5py.File(path, "a") as handle:
        group = handle.create_group("many")
        for index in range(20_000):
            group[f"l{index}"] = h5py.SoftLink("/nowhere")
        handle["far"] = h5py.ExternalLink("/dev/zero", "/x")  # never on the way: harmless
    load_weights(tiny, path)
    np.testing.assert_array_equal(tiny.get_layer("block1_conv1").get_weights()[0],
                                  values["block1_conv1"][0])


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    model = vggspec.build_model(vggspec.spec_from_text(TINY))
    path = tmp_path_factory.mktemp("k") / "m.keras"
    vggspec.save_model(model, path)
    return path


def patched_member(source: Path, target: Path, method: int | None = None, flags: int = 0,
                   data: bytes | None = None) -> Path:
    """``source`` rewritten with its weights member's method, flag bits or data changed,
    in both the local header and the directory."""
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content, zipfile.ZIP_DEFLATED)
    raw = bytearray(target.read_bytes())
    name = weights.KERAS_WEIGHTS_MEMBER.encode()
    for header, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = 0
        while (at := raw.find(header, at)) >= 0:
            offset = 30 if header == b"PK\x03\x04" else 46
            if raw[at + offset:at + offset + len(name)] == name:
                raw[at + flag_at] |= flags
                if method is not None:
                    raw[at + method_at:at + method_at + 2] = method.to_bytes(2, "little")
                if data is not None and header == b"PK\x03\x04":
                    start = at + 30 + len(name) + int.from_bytes(raw[at + 28:at + 30],
                                                                  "little")
                    raw[start:start + len(data)] = data
            at += 4
    target.write_bytes(bytes(raw))
    return target


@pytest.mark.parametrize("change, message", [
    ({"flags": 1}, "model.weights.h5 is encrypted; refused"),
    ({"method": 99}, "model.weights.h5 is compressed with method 99; only stored and "
                     "deflated members are read"),
    ({"method": zipfile.ZIP_BZIP2, "data": b"BZh9" + bytes(12)},
     "model.weights.h5 is compressed with method 12; only stored and deflated members are "
     "read"),
    ({"method": zipfile.ZIP_LZMA, "data": bytes(16)},
     "model.weights.h5 is compressed with method 14; only stored and deflated members are "
     "read"),
    ({"data": b"\xff" * 8}, "cannot read weights (truncated or corrupt file?): Error -3 "
                            "while decompressing data: invalid block type"),
])
def test_keras_archives_that_zipfile_cannot_read_are_one_line(tiny, keras_file, tmp_path,
                                                              change, message):
    path = patched_member(keras_file, tmp_path / "w.keras", **change)
    assert refused(tiny, path) == f"{path}: {message}"


def test_a_keras_archive_with_a_wrong_checksum_is_one_line(tiny, keras_file, tmp_path):
    raw = bytearray(keras_file.read_bytes())
    directory = raw.find(b"PK\x01\x02" + raw[raw.find(b"PK\x01\x02") + 4:][:2])
    while raw[directory + 46:directory + 46 + 16] != b"model.weights.h5":
        directory = raw.find(b"PK\x01\x02", directory + 4)
    raw[directory + 16] ^= 0xFF
    path = tmp_path / "crc.keras"
    path.write_bytes(bytes(raw))
    assert refused(tiny, path) == (f"{path}: cannot read weights (truncated or corrupt "
                                   f"file?): Bad CRC-32 for file 'model.weights.h5'")


def test_the_cli_refuses_a_hostile_weights_file_with_exit_2_and_one_line(costly, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    looping = costly["looping"]
    result = run_cli("build", str(spec), "--weights", str(looping["path"]), timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["building tiny: 224 parameters (0.00 GiB float32)",
                                          "tiny on tensorflow, CPU", looping["outcome"]]


# Loads many damaged copies of small weights files in one fresh interpreter; for each,
# one JSON line: "loaded", or ["InputError", message], or the name of any other exception.
FUZZ = """
import json, random, sys
import vggspec
model = vggspec.build_model(vggspec.spec_from_text(sys.argv[1]))
out = sys.argv[2]
for source in sys.argv[3:]:
    data = open(source, "rb").read()
    rng = random.Random(source.rsplit("/", 1)[-1])
    for case in range(240):
        damaged = bytearray(data)
        if case % 4 == 0:
            damaged = damaged[:rng.randrange(8, len(data))]
        else:
            for _ in range(1 + case % 3):
                at = rng.randrange(8, len(damaged))
                damaged[at] = damaged[at] ^ (1 << rng.randrange(8)) if case % 2 \\
                    else rng.randrange(256)
        path = f"{out}/{case}-{source.rsplit('/', 1)[-1]}"
        open(path, "wb").write(damaged)
        try:
            vggspec.load_weights(model, path)
            outcome = "loaded"
        except vggspec.InputError as error:
            outcome = ["InputError", str(error), path]
        except BaseException as error:
            outcome = [type(error).__name__, str(error)[:300], path]
        print(json.dumps(outcome), flush=True)
"""


def test_damaged_weights_files_load_or_fail_as_one_line(tmp_path):
    model = vggspec.build_model(vggspec.spec_from_text(TINY))
    model.set_weights([w for layer in arrays(model).values() for w in layer])
    model.save_weights(tmp_path / "tiny.weights.h5")
    legacy_file(tmp_path / "legacy.h5", arrays(model))  # variable-length names
    keras3_file(tmp_path / "gzip.h5", arrays(model), options={  # filtered chunks
        "block1_conv1/0": {"compression": "gzip", "shuffle": True, "fletcher32": True,
                           "chunks": (3, 3, 1, 4)},
        "block1_conv1/1": {"compression": "gzip", "chunks": (4,)}})
    # A .keras archive with fixed dates and metadata: the same bytes in every run.
    members = {"metadata.json": b"{}",
               "model.weights.h5": (tmp_path / "tiny.weights.h5").read_bytes()}
    with zipfile.ZipFile(tmp_path / "tiny.keras", "w") as archive:
        for name, content in members.items():
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), content,
                             zipfile.ZIP_DEFLATED)
    sources = [str(tmp_path / name)
               for name in ("tiny.weights.h5", "legacy.h5", "tiny.keras", "gzip.h5")]
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, "-c", FUZZ, TINY, str(out), *sources],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:], outcomes[-1:])
    assert len(outcomes) == 4 * 240
    assert [o for o in outcomes if o != "loaded" and o[0] != "InputError"] == []
    for source in range(4):  # the damage is real: many copies of each are refused
        assert sum(o != "loaded" for o in outcomes[240 * source:240 * (source + 1)]) > 60
    for outcome in outcomes:
        if outcome != "loaded":
            _, message, path = outcome
            assert message.startswith(f"{path}: ") and "\n" not in message
            assert message.isprintable() and len(message) <= 600


# --- found by a second attacker's pass -------------------------------------------------

def test_a_checksummed_chunk_shorter_than_its_checksum_is_refused_not_crashed(tmp_path):
    # HDF5's fletcher32 filter reads past such a chunk and kills the process (exit 139),
    # so this runs in a child: a regression shows as a crash there, not here.
    script = f"""
import h5py, numpy as np, vggspec
with h5py.File("short.weights.h5", "w") as handle:
    group = handle.create_group("layers/conv2d/vars")
    data = group.create_dataset("0", shape=(3, 3, 3, 8), dtype="f4", chunks=(3, 3, 3, 8),
                                fletcher32=True)
    data.id.write_direct_chunk((0, 0, 0, 0), b"\\1")
    group.create_dataset("1", data=np.zeros(8, "f4"))
model = vggspec.build_model(vggspec.spec_from_text({TINY!r}))
try:
    vggspec.load_weights(model, "short.weights.h5")
except vggspec.InputError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout == ("short.weights.h5: '/layers/conv2d/vars/0' has a checksummed "
                             "chunk of 1 byte, shorter than its checksum; refused\n")


def test_values_beyond_float32_are_refused(tiny, tmp_path):
    layers = arrays(tiny)
    layers["block1_conv1"][0] = np.full(layers["block1_conv1"][0].shape, 1e300)
    assert refused(tiny, keras3_file(tmp_path / "big.weights.h5", layers)).endswith(
        "'block1_conv1' holds values that are not finite float32 numbers (inf, nan or beyond "
        "3.4e38); nothing loaded")
    layers["block1_conv1"][0] = np.full(layers["block1_conv1"][0].shape, np.nan, "f4")
    assert "not finite float32 numbers" in refused(tiny, keras3_file(tmp_path / "nan.weights.h5",
                                                                     layers))


def test_chunks_are_counted_over_the_whole_file(tmp_path):
    # Each dataset stays under the per-dataset count; together they pass it.
    spec = ("name: three\ninput: {shape: [8, 8, 3]}\nblocks: [[64, 64, 72, max]]\n"
            "head: {type: none}\n")
    model = vggspec.build_model(vggspec.spec_from_text(spec))
    values = arrays(model)
    path = tmp_path / "many.weights.h5"
    with h5py.File(path, "w") as handle:
        for key, name in (("conv2d", "block1_conv1"), ("conv2d_1", "block1_conv2"),
                          ("conv2d_2", "block1_conv3")):
            group = handle.create_group(f"layers/{key}/vars")
            kernel = values[name][0]
            # One chunk a number: 1,728, 36,864 and 41,472 chunks.
            group.create_dataset("0", data=kernel, chunks=(1, 1, 1, 1))
            group.create_dataset("1", data=values[name][1])
    assert refused(model, path).endswith(f"the weights are stored in more than "
                                         f"{weights.MAX_CHUNKS:,} chunks in all, more than "
                                         f"are read; refused")
