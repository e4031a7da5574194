"""Weights by layer name, all or nothing; saving atomically; `vggspec build` end to end."""

from __future__ import annotations

import re

import h5py
import keras
import numpy as np
import pytest

import vggspec
from conftest import run_cli, run_python
from vggspec.builder import build_model
from vggspec.weights import load_weights, save_model

SMALL_VGG16 = "extends: vgg16\ninput: {shape: [32, 32, 3]}\n"


def legacy_file(model, path):
    """Write weights in the published legacy layout, with Keras' own writer."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path


@pytest.fixture(scope="module")
def reference():
    return keras.applications.VGG16(weights=None, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def legacy_top(reference, tmp_path_factory):
    return legacy_file(reference, tmp_path_factory.mktemp("w") / "vgg16_weights_tf.h5")


def predictions(model, seed=0):
    batch = np.random.default_rng(seed).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    return model(batch, training=False).numpy()


def test_legacy_layout_loads_by_name(reference, legacy_top):
    model = build_model(vggspec.spec_from_text(SMALL_VGG16), weights=legacy_top)
    np.testing.assert_allclose(predictions(model), predictions(reference), atol=1e-6)


def test_legacy_notop_file_and_a_top_file_into_a_notop_model(reference, legacy_top, tmp_path):
    notop = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = legacy_file(notop, tmp_path / "vgg16_notop.h5")
    spec = vggspec.spec_from_text(SMALL_VGG16 + "head: {type: none}\n")
    for file, source in ((path, notop), (legacy_top, reference)):
        model = build_model(spec, weights=file)
        np.testing.assert_array_equal(model.get_layer("block5_conv3").get_weights()[0],
                                      source.get_layer("block5_conv3").get_weights()[0])


def test_weights_h5_and_keras_files_round_trip(tmp_path):
    spec = vggspec.spec_from_text("extends: vgg11_bn\ninput: {shape: [32, 32, 3]}\n"
                                  "head: {units: [16], classes: 3}\n")
    source = build_model(spec)
    for layer in source.layers:  # make batch-norm statistics differ from their defaults
        if layer.weights:
            layer.set_weights([np.random.default_rng(4).uniform(0.5, 1.5, w.shape)
                               for w in layer.get_weights()])
    source.save_weights(tmp_path / "m.weights.h5")
    save_model(source, tmp_path / "m.keras")
    for file in ("m.weights.h5", "m.keras"):
        model = build_model(spec, weights=tmp_path / file)
        np.testing.assert_allclose(predictions(model), predictions(source), rtol=1e-5)
        np.testing.assert_array_equal(model.get_layer("block3_conv2_bn").get_weights()[3],
                                      source.get_layer("block3_conv2_bn").get_weights()[3])


def test_weights_of_another_spec_are_refused_whole(tmp_path):
    other = build_model(vggspec.spec_from_text("extends: vgg11\ninput: {shape: [32, 32, 1]}\n"
                                               "head: {type: none}\n"))
    other.save_weights(tmp_path / "vgg11.weights.h5")
    model = build_model(vggspec.spec_from_text(SMALL_VGG16 + "head: {type: none}\n"))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(vggspec.InputError) as caught:
        load_weights(model, tmp_path / "vgg11.weights.h5")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/vgg11.weights.h5: weights do not fit model "
                              f"'vgg16', nothing loaded: block1_conv1 has (3,3,1,64) (64,) in "
                              f"the file, the model needs (3,3,3,64) (64,); ")
    # Keras 3 files name layers by class and position: vgg11's 3rd conv meets our 3rd.
    assert "block2_conv1 has (3,3,128,256) (256,) in the file" in message
    assert "block2_conv2 has (3,3,256,256) (256,) in the file, the model needs " \
           "(3,3,128,128) (128,)" in message
    # Thirteen layers differ: the first few are listed, the rest counted, in one line.
    assert message.endswith("; and 8 more layers")
    assert "\n" not in message and len(message) <= 600
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("content, message", [
    (b"not weights at all", "not a weights file vggspec reads (Keras .h5, .weights.h5 or "
                            ".keras; torchvision or timm .safetensors, .pth)"),
    (b"PK\x03\x04broken zip", "cannot read weights (truncated or corrupt file?)"),
])
def test_non_weights_files_are_refused(tmp_path, content, message):
    path = tmp_path / "w.h5"
    path.write_bytes(content)
    with pytest.raises(vggspec.InputError, match="^" + re.escape(f"{tmp_path}/w.h5: {message}")):
        build_model(vggspec.spec_from_text(SMALL_VGG16), weights=path)


def test_truncated_hdf5_file_is_refused(legacy_top, tmp_path):
    path = tmp_path / "cut.h5"
    path.write_bytes(legacy_top.read_bytes()[:20_000])
    with pytest.raises(vggspec.InputError, match="cannot read weights"):
        build_model(vggspec.spec_from_text(SMALL_VGG16), weights=path)


def test_interrupted_save_leaves_nothing(tmp_path, monkeypatch):
    model = build_model(vggspec.spec_from_text("name: t\ninput: {shape: [8, 8, 1]}\n"
                                               "blocks: [[2, max]]\nhead: {type: none}\n"))

    def broken_save(path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, tmp_path / "out.keras")
    assert list(tmp_path.iterdir()) == []


def test_cli_build_prints_summary_and_tap_shapes_and_saves(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SMALL_VGG16.replace("vgg16", "vgg11_lrn") + "name: small_lrn\n")
    result = run_cli("build", str(spec), "--save", str(tmp_path / "m.keras"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-6:] == ["block1: (1, 16, 16, 64)", "block2: (1, 8, 8, 128)",
                          "block3: (1, 4, 4, 256)", "block4: (1, 2, 2, 512)",
                          "block5: (1, 1, 1, 512)", f"saved {tmp_path}/m.keras"]
    assert sum("block1_conv1_lrn" in line for line in lines) == 1
    assert sum("(LocalResponseNormalization)" in line for line in lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "s.yaml"]
    code = ("import vggspec.layers, keras, sys\n"
            "m = keras.models.load_model(sys.argv[1])\n"
            "print(m.name, len(m.layers), m.count_params())")
    out = run_python(code, str(tmp_path / "m.keras"))
    assert out.stdout.split() == ["small_lrn", "19", str(vggspec.plan(vggspec.load_spec(spec)).params)]


def test_saved_vgg16_reloads_with_plain_keras(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SMALL_VGG16 + "name: v\n")
    assert run_cli("build", str(spec), "--save", str(tmp_path / "v.keras")).returncode == 0
    code = ("import keras, sys\nm = keras.models.load_model(sys.argv[1])\n"
            "print(m.name, [l.name for l in m.layers][-3:])")
    out = run_python(code, str(tmp_path / "v.keras"))
    assert out.stdout.strip() == "v ['fc1', 'fc2', 'predictions']"


@pytest.mark.parametrize("save, message", [
    ("missing/dir/m.keras", "missing/dir: no such folder"),
    ("m.h5", "m.h5: the file name must end in .keras"),
])
def test_cli_build_checks_the_output_path_first(tmp_path, save, message):
    result = run_cli("build", "archs/vgg16.yaml", "--save", str(tmp_path / save))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{tmp_path}/{message}"
    assert "building" not in result.stderr


def test_cli_build_bad_weights_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("hello")
    spec = tmp_path / "s.yaml"
    spec.write_text(SMALL_VGG16)
    result = run_cli("build", str(spec), "--weights", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"{bad}: not a weights file vggspec")
    assert "Traceback" not in result.stderr
    missing = run_cli("build", str(spec), "--weights", str(tmp_path / "none.h5"))
    assert (missing.returncode, missing.stderr.strip()) == (2, f"{tmp_path}/none.h5: no such file")


def test_cli_build_invalid_spec_and_memory_limit_exit_1():
    result = run_cli("build", "archs/vgg16.yaml", "--max-weight-gib", "0.1")
    assert result.returncode == 1
    assert result.stderr.startswith("archs/vgg16.yaml:15:11: $.head.units[0]: the weights "
                                    "need 527.8 MiB")
    result = run_cli("build", "tests/invalid/negative_filters.yaml")
    assert (result.returncode, result.stderr.strip().splitlines()) == (1, [
        "tests/invalid/negative_filters.yaml:7:6: $.blocks[2][0]: must be at least 1, got -64",
        "tests/invalid/negative_filters.yaml: note: the checks that need the layers (input "
        "size, taps) did not run: $.blocks has problems"])


def test_a_partial_load_takes_what_fits_and_says_what_it_left(tmp_path):
    base = ("name: p\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max], [16, max]]\n"
            "head: {type: dense, units: [12], classes: 5}\n")
    source = build_model(vggspec.spec_from_text(base))
    source.save_weights(tmp_path / "five.weights.h5")
    target = build_model(vggspec.spec_from_text(base.replace("classes: 5", "classes: 3")))
    fresh = target.get_layer("predictions").get_weights()
    with pytest.raises(vggspec.InputError, match="nothing loaded: predictions has"):
        load_weights(target, tmp_path / "five.weights.h5")      # never partial unless asked
    report = load_weights(target, tmp_path / "five.weights.h5", partial=True)
    assert report.loaded == ("block1_conv1", "block2_conv1", "fc1")
    assert report.skipped == ("predictions has (12,5) (5,) in the file, the model needs "
                              "(12,3) (3,)",)
    for name in report.loaded:
        for ours, theirs in zip(target.get_layer(name).get_weights(),
                                source.get_layer(name).get_weights()):
            assert np.array_equal(ours, theirs)
    assert all(np.array_equal(a, b) for a, b in
               zip(target.get_layer("predictions").get_weights(), fresh))
    other = build_model(vggspec.spec_from_text(
        base.replace("[[8, max], [16, max]]", "[[4, max]]").replace("[12]", "[7]")))
    with pytest.raises(vggspec.InputError, match="not one layer fits, nothing loaded"):
        load_weights(other, tmp_path / "five.weights.h5", partial=True)


def test_cli_build_partial_says_what_it_loaded(tmp_path):
    base = ("name: p\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]\n"
            "head: {type: dense, units: [12], classes: 5}\n")
    build_model(vggspec.spec_from_text(base)).save_weights(tmp_path / "w.weights.h5")
    (tmp_path / "new.yaml").write_text(base.replace("classes: 5", "classes: 2"))
    result = run_cli("build", str(tmp_path / "new.yaml"), "--weights",
                     str(tmp_path / "w.weights.h5"), "--partial")
    assert result.returncode == 0, result.stderr
    assert (f"loaded 2 layers from {tmp_path}/w.weights.h5; left initialised: predictions "
            f"has (12,5) (5,) in the file, the model needs (12,2) (2,)") in result.stderr
