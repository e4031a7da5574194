"""Published weights by name: the registry against its publishers' code, resolve() for every
shipped spec, and fetch() through keras.utils.get_file from a local server (no network)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import inspect
import re
import threading

import pytest

import vggspec
from conftest import run_python
from vggspec import sources
from vggspec.extends import shipped_specs
from vggspec.sources import SOURCES, Source, cache_path, fetch, origin, resolve

KERAS_TOP = "vgg{}_weights_tf_dim_ordering_tf_kernels.h5"
KERAS_NOTOP = "vgg{}_weights_tf_dim_ordering_tf_kernels_notop.h5"
TORCHVISION = {"vgg11": "vgg11-8a719046.pth", "vgg11_bn": "vgg11_bn-6002323d.pth",
               "vgg13": "vgg13-19584684.pth", "vgg13_bn": "vgg13_bn-abd245e5.pth",
               "vgg16": "vgg16-397923af.pth", "vgg16_bn": "vgg16_bn-6c64b313.pth",
               "vgg19": "vgg19-dcbb9e9d.pth", "vgg19_bn": "vgg19_bn-c79401a0.pth"}
NO_WEIGHTS = ("vgg11_lrn", "vgg16_c", "vgg16_cifar")
HEADS = ("dense", "global_avg", "global_max", "none")


# --- The registry, against the publishers' own code ---------------------------------------

@pytest.mark.parametrize("depth", ["16", "19"])
def test_keras_entries_are_what_keras_applications_downloads(depth):
    from keras.src.applications import vgg16, vgg19

    module = {"16": vgg16, "19": vgg19}[depth]
    code = inspect.getsource(module)
    # Keras' own get_file calls: (file name, URL constant, cache_subdir, md5), in order.
    calls = re.findall(r'get_file\(\s*"([^"]+)",\s*(\w+),\s*cache_subdir="(\w+)",\s*'
                       r'file_hash="([0-9a-f]+)"', code)
    assert [name for name, *_ in calls] == [KERAS_TOP.format(depth), KERAS_NOTOP.format(depth)]
    for (name, constant, subdir, md5), top in zip(calls, (True, False)):
        ours = resolve("imagenet", f"vgg{depth}", "dense" if top else "none")
        assert (ours.file_name, ours.url, ours.hash, ours.include_top) == \
               (name, getattr(module, constant), md5, top)
        assert subdir == sources.CACHE_SUBDIR == "models"
        assert (ours.hash_kind, ours.layout, ours.preprocessing) == ("md5", "keras-h5", "caffe")
    assert 'mode="caffe"' in inspect.getsource(module.preprocess_input)


def test_torchvision_entries_carry_the_hash_prefix_of_their_names():
    entries = [s for s in SOURCES if s.publisher == "torchvision"]
    assert {s.spec: s.file_name for s in entries} == TORCHVISION
    for source in entries:
        assert source.url == "https://download.pytorch.org/models/" + source.file_name
        assert source.file_name == f"{source.spec}-{source.hash}.pth"
        assert len(source.hash) == 8
        assert (source.hash_kind, source.layout, source.preprocessing, source.include_top) == \
               ("sha256-prefix", "torch-state-dict", "torch", True)
    assert len(SOURCES) == 12 and len(set(SOURCES)) == 12


def test_importing_the_registry_does_not_import_keras():
    out = run_python("import sys, vggspec.sources as s\n"
                     "s.resolve('imagenet', 'vgg16', 'dense')\n"
                     "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    assert out.stdout.strip() == "[]", out.stderr


def test_a_source_with_a_path_for_a_name_or_a_bad_hash_is_refused():
    source = SOURCES[0]
    for name in ("../x.h5", "a/b.h5", "..", ""):
        with pytest.raises(ValueError, match="plain name"):
            dataclasses.replace(source, file_name=name)
    with pytest.raises(ValueError, match="not a md5 hash"):
        dataclasses.replace(source, hash="397923af")


# --- resolve(): every shipped spec ----------------------------------------------------------

def expected(name: str, spec: str, head: str) -> str | None:
    """The file a weights name gives a shipped spec; None for none published."""
    if name == "imagenet" and spec in ("vgg16", "vgg19"):
        return (KERAS_TOP if head == "dense" else KERAS_NOTOP).format(spec[3:])
    return TORCHVISION.get(spec)


def test_the_table_covers_every_shipped_spec():
    # A new shipped spec must be added here, with weights or without.
    assert sorted(shipped_specs()) == sorted([*TORCHVISION, *NO_WEIGHTS])


@pytest.mark.parametrize("spec", sorted(shipped_specs()))
@pytest.mark.parametrize("name", ["imagenet", "torchvision"])
def test_resolve_for_every_shipped_spec_and_head(name, spec):
    for head in HEADS:
        file = expected(name, spec, head)
        if file is None:
            with pytest.raises(vggspec.UsageError) as caught:
                resolve(name, spec, head)
            listed = ", ".join(sorted(s for s in TORCHVISION))
            assert str(caught.value) == (
                f"'{spec}' has no published {name} weights; {name} weights exist for the "
                f"shipped specs {listed} (found by the spec's name; for other weights, give "
                f"a file's path)")
            continue
        source = resolve(name, spec, head)
        assert (source.file_name, source.spec) == (file, spec)
        assert source.publisher == ("keras" if file.endswith(".h5") else "torchvision")


def test_other_names_are_paths_and_unknown_specs_are_refused():
    for path in ("weights.h5", "./imagenet", "ImageNet", "", "keras"):
        assert resolve(path, "vgg16", "dense") is None
    from pathlib import Path
    assert resolve(Path("imagenet"), "vgg16", "dense") is None  # a Path is always a file
    with pytest.raises(vggspec.UsageError, match="^'my_vgg16' has no published imagenet"):
        resolve("imagenet", "my_vgg16", "dense")
    with pytest.raises(ValueError, match="head type must be one of"):
        resolve("imagenet", "vgg16", "flatten")


# --- fetch(): a local server stands in for the publishers -----------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A folder served at http://127.0.0.1:<port>; yields (folder, address, stop)."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    stopped = []

    def stop():
        if not stopped:
            httpd.shutdown()
            httpd.server_close()
            thread.join()
            stopped.append(True)

    yield folder, f"http://127.0.0.1:{httpd.server_port}", stop
    stop()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """KERAS_HOME (and HOME, Keras' default) in tmp_path: no test writes to the real cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    folder = tmp_path / "keras_home"
    folder.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(folder))
    monkeypatch.delenv("VGGSPEC_WEIGHTS_MIRROR", raising=False)
    return folder


CONTENT = b"not really weights, but bytes with a known hash\n" * 100


def keras_like(content: bytes = CONTENT) -> Source:
    """Keras' vgg16 entry, with the md5 of ``content``."""
    return dataclasses.replace(resolve("imagenet", "vgg16", "dense"),
                               hash=hashlib.md5(content).hexdigest())


def torch_like(content: bytes = CONTENT, prefix: str | None = None) -> Source:
    """A torchvision-style entry whose name carries the sha256 prefix of ``content``."""
    prefix = prefix or hashlib.sha256(content).hexdigest()[:8]
    return dataclasses.replace(resolve("torchvision", "vgg11", "dense"),
                               file_name=f"vgg11-{prefix}.pth", hash=prefix)


def test_fetch_downloads_into_keras_home_models_keeping_stdout_clean(server, home, monkeypatch,
                                                                     capfd):
    folder, address, stop = server
    source = keras_like()
    (folder / source.file_name).write_bytes(CONTENT)
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", address + "/")
    assert origin(source) == f"{address}/{source.file_name}"
    path = fetch(source)
    assert path == cache_path(source) == home / "models" / source.file_name
    assert path.read_bytes() == CONTENT
    out, err = capfd.readouterr()
    assert out == ""
    assert f"Downloading data from {address}/{source.file_name}" in err
    # Cached and checked: no server needed the second time.
    stop()
    assert fetch(source) == path and path.read_bytes() == CONTENT


def test_a_file_put_in_the_cache_by_hand_is_used_offline(home, monkeypatch):
    source = keras_like()
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", "http://127.0.0.1:9/")  # discard port
    (home / "models").mkdir()
    (home / "models" / source.file_name).write_bytes(CONTENT)
    assert fetch(source) == home / "models" / source.file_name


def test_a_download_with_the_wrong_md5_is_refused_and_removed(server, home, monkeypatch):
    folder, address, _ = server
    source = keras_like(b"what the hash promises")
    (folder / source.file_name).write_bytes(b"something else entirely")
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", address)
    with pytest.raises(vggspec.InputError) as caught:
        fetch(source)
    target = home / "models" / source.file_name
    assert str(caught.value) == (
        f"{address}/{source.file_name}: the file downloaded does not match the md5 keras "
        f"publishes for {source.file_name} ({source.hash}): damaged on the way, or another "
        f"file; removed it from {target}")
    assert caught.value.exit_code == 2
    assert list((home / "models").iterdir()) == []


def test_an_unreachable_address_names_it_and_where_to_put_the_file(server, home, monkeypatch):
    _, address, stop = server
    stop()  # the port is closed now: connection refused
    source = keras_like()
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", address)
    with pytest.raises(vggspec.InputError) as caught:
        fetch(source)
    message = str(caught.value)
    target = home / "models" / source.file_name
    assert message.startswith(f"cannot download {source.file_name} from "
                              f"{address}/{source.file_name}: ")
    assert "Connection refused" in message
    assert message.endswith(f"; to work offline, download it elsewhere and put it at {target}, "
                            f"or set VGGSPEC_WEIGHTS_MIRROR to an address or folder that has it")
    assert "\n" not in message and len(message) <= 600
    assert list((home / "models").iterdir()) == []


def test_a_missing_file_on_the_server_is_an_http_error(server, home, monkeypatch):
    _, address, _ = server
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", address)
    with pytest.raises(vggspec.InputError, match=r": HTTP 404 File not found; to work offline"):
        fetch(keras_like())


def test_a_damaged_cached_copy_is_fetched_again_or_reported(server, home, monkeypatch):
    folder, address, stop = server
    for source in (keras_like(), torch_like()):
        (folder / source.file_name).write_bytes(CONTENT)
        (home / "models").mkdir(exist_ok=True)
        target = home / "models" / source.file_name
        target.write_bytes(CONTENT[:100])  # an interrupted copy
        monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", address)
        assert fetch(source).read_bytes() == CONTENT
    stop()
    for source in (keras_like(), torch_like()):
        target = home / "models" / source.file_name
        target.write_bytes(CONTENT[:100])
        with pytest.raises(vggspec.InputError) as caught:
            fetch(source)
        assert f"; the copy at {target} did not match its hash and was removed; " \
               in str(caught.value)
        assert not target.exists()


def test_torchvision_files_are_checked_by_the_sha256_prefix_in_their_names(server, home,
                                                                            monkeypatch, capfd):
    folder, address, _ = server
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", address)
    good = torch_like()
    (folder / good.file_name).write_bytes(CONTENT)
    assert fetch(good).read_bytes() == CONTENT
    assert capfd.readouterr().out == ""
    # A name whose prefix is not the sha256 of the bytes served under it.
    wrong = "0" * 8 if not hashlib.sha256(CONTENT).hexdigest().startswith("0" * 8) else "1" * 8
    bad = torch_like(prefix=wrong)
    (folder / bad.file_name).write_bytes(CONTENT)
    with pytest.raises(vggspec.InputError) as caught:
        fetch(bad)
    target = home / "models" / bad.file_name
    assert str(caught.value) == (
        f"{address}/{bad.file_name}: the file downloaded does not match the sha256 "
        f"torchvision publishes for {bad.file_name} (it must begin with {wrong}): damaged on "
        f"the way, or another file; removed it from {target}")
    assert sorted(p.name for p in (home / "models").iterdir()) == [good.file_name]


def test_a_folder_mirror_and_bad_mirrors(tmp_path, home, monkeypatch):
    source = torch_like()
    (tmp_path / source.file_name).write_bytes(CONTENT)
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", str(tmp_path))
    assert origin(source) == f"file://{tmp_path}/{source.file_name}"
    assert fetch(source).read_bytes() == CONTENT
    for mirror in ("ftp://host/w", "weights", "https://", "javascript:alert(1)"):
        monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", mirror)
        with pytest.raises(vggspec.UsageError, match="^VGGSPEC_WEIGHTS_MIRROR must be an "):
            origin(source)
    monkeypatch.delenv("VGGSPEC_WEIGHTS_MIRROR")
    assert origin(source) == source.url


def test_a_cache_folder_that_cannot_be_written_is_an_input_error(tmp_path, monkeypatch):
    blocker = tmp_path / "home"
    blocker.mkdir()
    (blocker / "models").write_text("a file where the models folder should be")
    monkeypatch.setenv("KERAS_HOME", str(blocker))
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(vggspec.InputError, match="cannot write the weights file there"):
        fetch(keras_like())


def test_keras_home_is_read_when_fetching_and_created_if_missing(tmp_path, monkeypatch):
    source = keras_like()
    fresh = tmp_path / "not" / "yet"
    monkeypatch.setenv("KERAS_HOME", str(fresh))
    assert cache_path(source) == fresh / "models" / source.file_name
    (tmp_path / source.file_name).write_bytes(CONTENT)
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", str(tmp_path))
    # get_file alone would fall back to /tmp/.keras for a folder that does not exist yet.
    assert fetch(source) == fresh / "models" / source.file_name


def test_a_good_cached_torchvision_file_is_hashed_once_and_needs_no_network(home, monkeypatch):
    source = torch_like()
    (home / "models").mkdir()
    (home / "models" / source.file_name).write_bytes(CONTENT)
    monkeypatch.setenv("VGGSPEC_WEIGHTS_MIRROR", "http://127.0.0.1:9/")  # discard port
    calls = []
    original = sources._has_sha256_prefix
    monkeypatch.setattr(sources, "_has_sha256_prefix",
                        lambda path, prefix: calls.append(path) or original(path, prefix))
    assert fetch(source) == home / "models" / source.file_name
    assert calls == [home / "models" / source.file_name]


# --- end to end: "imagenet" through the builder and the CLI ------------------------------

SMALL_VGG16 = "extends: vgg16\ninput: {shape: [32, 32, 3]}\nhead: {type: none}\n"


def test_imagenet_by_name_loads_the_published_layout_end_to_end(tmp_path, home, monkeypatch,
                                                                 capsys):
    """A stand-in for Keras' notop file (same name and layout, our own numbers, its md5
    registered) served from a folder mirror: build_model(weights="imagenet") and
    `vggspec features --weights imagenet` fetch it, load it and choose caffe."""
    import h5py
    import numpy as np

    import vggspec
    from vggspec import cli

    spec = vggspec.spec_from_text(SMALL_VGG16, file="small.yaml")
    source = vggspec.build_model(spec)
    rng = np.random.default_rng(0)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(mirror / name, "w") as handle:      # the legacy layout Keras publishes
        layers = [layer for layer in source.layers if layer.weights]
        handle.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = handle.create_group(layer.name)
            names = [f"{layer.name}_W_1:0".encode(), f"{layer.name}_b_1:0".encode()]
            for weight_name, weight in zip(names, layer.weights):
                group.create_dataset(weight_name.decode(),
                                     data=rng.standard_normal(weight.shape).astype("f4"))
            group.attrs["weight_names"] = names
    digest = hashlib.md5((mirror / name).read_bytes()).hexdigest()
    stand_in = [s if s.file_name != name else dataclasses.replace(s, hash=digest)
                for s in sources.SOURCES]
    monkeypatch.setattr(sources, "SOURCES", tuple(stand_in))
    monkeypatch.setenv(sources.MIRROR_VARIABLE, str(mirror))

    model = vggspec.build_model(spec, weights="imagenet")
    with h5py.File(mirror / name, "r") as handle:
        assert np.array_equal(model.get_layer("block5_conv3").get_weights()[0],
                              handle["block5_conv3"]["block5_conv3_W_1:0"][()])
    assert (home / "models" / name).is_file()

    (tmp_path / "small.yaml").write_text(SMALL_VGG16)
    from PIL import Image

    Image.new("RGB", (40, 40), "white").save(tmp_path / "white.png")
    assert cli.main(["features", str(tmp_path / "small.yaml"), str(tmp_path / "white.png"),
                     "--weights", "imagenet", "--out", str(tmp_path / "out"), "--taps",
                     "block1", "--no-png", "--npz"]) == 0
    assert "preprocessing: caffe, as keras's weights expect (--preprocess overrides)" in \
        capsys.readouterr().err


def test_torchvision_pickles_are_refused_before_any_download_when_torch_is_absent(
        tmp_path, home, monkeypatch, capsys):
    """Nothing is fetched (the mirror is the discard port, so any attempt would be a
    download error; the cache stays empty) for a file this machine could not read; a
    Keras file needs no torch."""
    import importlib.util

    from vggspec import cli

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else
                        real_find_spec(name, *rest))
    monkeypatch.setenv(sources.MIRROR_VARIABLE, "http://127.0.0.1:9/")
    (tmp_path / "small.yaml").write_text("extends: vgg11_bn\ninput: {shape: [32, 32, 3]}\n"
                                     "head: {type: none}\n")
    expected = ("vgg11_bn: torchvision publishes these weights as a PyTorch pickle "
                "(vgg11_bn-6002323d.pth), read only by torch.load(weights_only=True): "
                "install torch, or convert the file to .safetensors elsewhere and pass its "
                "path\n")
    assert cli.main(["build", str(tmp_path / "small.yaml"), "--weights", "imagenet"]) == 2
    assert capsys.readouterr().err == expected
    spec = vggspec.load_spec(tmp_path / "small.yaml")
    with pytest.raises(vggspec.InputError, match="^vgg11_bn: torchvision publishes"):
        vggspec.build_model(spec, weights="torchvision")
    assert not (home / "models").exists()
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    sources.check_readable(resolve("imagenet", "vgg16", "dense"))   # Keras' file: no torch
