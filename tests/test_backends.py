"""Any Keras backend: the same spec, weights file and images give the same numbers on
JAX (and PyTorch where it is installed) as on TensorFlow (feature maps, predictions,
embeddings, Grad-CAM maps, filter pictures), and as keras.applications' own
VGG16 on that backend; keras.json's data format cannot flip what we build; the CLI says
where it runs and nothing else from the frameworks' start-up."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import vggspec
from conftest import ROOT, run_cli
from vggspec.features import compiled, load_image, preprocess

SPEC = """\
name: parity
input: {shape: [32, 40, 3]}
defaults: {batch_norm: {epsilon: 1.0e-5, momentum: 0.9}}
blocks:
  - [8, max]
  - [16, {filters: 16, kernel: 1}, max]
head: {type: dense, units: [12], classes: 5}
taps: [block1, block2_conv2, block2]
"""

ON_BACKEND = """
import sys
import numpy as np
import keras
import vggspec
from vggspec.embed import embed, read_embeddings
from vggspec.features import compiled, load_image, preprocess

spec_file, weights, image, out = sys.argv[1:5]
model = vggspec.build_model(spec_file, weights=weights)
features = vggspec.feature_model(model)
pixels = preprocess(load_image(image, 3, (32, 40))[None], "caffe")
results = {f"tap_{k}": v for k, v in compiled(features)(pixels).items()}
results["predictions"] = keras.ops.convert_to_numpy(model(pixels, training=False))
embed(spec_file, [image], out + "_embed", tap="block2", weights=weights, draft=False)
results["embed"] = read_embeddings(out + "_embed")[1]
reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
ours = vggspec.build_model(vggspec.spec_from_text(
    "extends: vgg16\\ninput: {shape: [32, 32, 3]}\\nhead: {type: none}\\n"))
for layer in reference.layers:
    if layer.weights:
        layer.set_weights(ours.get_layer(layer.name).get_weights())
square = pixels[:, :, :32]
results["vgg16_ours"] = keras.ops.convert_to_numpy(ours(square))
results["vgg16_reference"] = keras.ops.convert_to_numpy(reference(square))
cams, classes, _ = vggspec.GradCam(model, "block2_conv1")(pixels, [3])
results["grad_cam"] = cams
patterns = vggspec.filter_patterns(model, "block2_conv1", 3, size=32, steps=3)
results["filter_images"] = patterns.images
results["filter_activation"] = patterns.activation
np.savez(out, backend=keras.backend.backend(), **results)
"""


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The spec, a weights file written on TensorFlow, a photo, TensorFlow's numbers."""
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("parity")
    spec_file = folder / "parity.yaml"
    spec_file.write_text(SPEC)
    model = vggspec.build_model(spec_file)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch-norm statistics that are not 0 and 1
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.2, w.shape).astype("f4") + (w.ndim == 1)
                               * (1.0 if "bn" in layer.name else 0.0)
                               for w in layer.get_weights()])
    weights = folder / "parity.weights.h5"
    model.save_weights(weights)
    image = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    pixels = preprocess(load_image(image, 3, (32, 40))[None], "caffe")
    expected = {f"tap_{k}": v for k, v in compiled(vggspec.feature_model(model))(pixels).items()}
    expected["predictions"] = np.asarray(model(pixels, training=False))
    expected["grad_cam"] = vggspec.GradCam(model, "block2_conv1")(pixels, [3])[0]
    patterns = vggspec.filter_patterns(model, "block2_conv1", 3, size=32, steps=3)
    expected["filter_activation"] = patterns.activation
    expected["filter_images"] = patterns.images
    return spec_file, weights, image, expected, folder


def run_on(backend: str, case) -> dict:
    spec_file, weights, image, _, folder = case
    out = folder / backend
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", ON_BACKEND, str(spec_file), str(weights),
                             str(image), str(out)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(f"{out}.npz") as saved:
        return {key: saved[key] for key in saved.files}


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_backend_gives_tensorflows_numbers_and_keras_applications_own(backend, case):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (CI installs JAX's CPU build, not PyTorch)")
    _, _, _, expected, _ = case
    got = run_on(backend, case)
    assert str(got["backend"]) == backend
    # Three steps of gradient ascent: float rounding may move a pixel by a level.
    assert np.abs(got.pop("filter_images").astype(int)
                  - expected["filter_images"].astype(int)).max() <= 2
    for key, value in expected.items():
        if key != "filter_images":
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-4, err_msg=key)
    assert got["grad_cam"].shape == (1, 16, 20) and got["grad_cam"].max() > 0
    assert got["tap_block2"].shape == (1, 8, 10, 16)
    np.testing.assert_allclose(got["embed"][0], expected["tap_block2"][0].mean(axis=(0, 1)),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["vgg16_ours"], got["vgg16_reference"], rtol=0, atol=1e-5)


def test_keras_json_channels_first_cannot_flip_what_is_built(case):
    import keras

    spec_file, weights, image, expected, _ = case
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        model = vggspec.build_model(spec_file, weights=weights)
        assert model.get_layer("block2_pool").output.shape == (None, 8, 10, 16)
        pixels = preprocess(load_image(image, 3, (32, 40))[None], "caffe")
        np.testing.assert_allclose(np.asarray(model(pixels, training=False)),
                                   expected["predictions"], rtol=1e-5, atol=1e-6)
    finally:
        keras.config.set_image_data_format(before)


def test_the_cli_says_where_it_runs_and_nothing_from_the_frameworks(case):
    spec_file = case[0]
    result = run_cli("build", str(spec_file))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "building parity: 17,261 parameters (0.00 GiB float32)",
        "parity on tensorflow, CPU"]


def test_the_backend_is_read_as_keras_reads_it_without_importing_keras(tmp_path):
    (tmp_path / "keras.json").write_text('{"backend": "jax", "floatx": "float32"}')
    code = ("import sys; from vggspec.backends import backend; print(backend(), "
            "'keras' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    for home, expected in ((tmp_path, "jax False"), (tmp_path / "none", "tensorflow False")):
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, env={**env, "KERAS_HOME": str(home)}, timeout=60)
        assert result.stdout.strip() == expected, result.stderr


def test_a_backend_that_is_not_installed_is_one_line(monkeypatch):
    from vggspec.backends import require

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "jax" else real(name, *rest))
    with pytest.raises(vggspec.UsageError) as caught:
        require("jax")
    have = " or ".join(name for name in ("tensorflow", "torch") if real(name) is not None)
    assert str(caught.value) == (
        f"the Keras backend is jax, which is not installed: pip install 'vggspec[jax]' (or "
        f"set KERAS_BACKEND to a backend you have: {have})")
    with pytest.raises(vggspec.UsageError, match="^KERAS_BACKEND=mxnet: vggspec runs on "):
        require("mxnet")


TRAIN_ON_BACKEND = """
import json, sys
import numpy as np
from vggspec import training

spec_file, data, out = sys.argv[1:4]
settings = dict(epochs=3, seed=4, log=lambda line: None)
straight = training.train(spec_file, data, out + "/straight", **settings)

def stop(line):
    if line.startswith("epoch 2/"):
        raise KeyboardInterrupt

try:
    training.train(spec_file, data, out + "/resumed", epochs=3, seed=4, log=stop)
except training.TrainingInterrupted:
    pass
resumed = training.train(spec_file, data, out + "/resumed", resume=True, **settings)
figures = training.evaluate(out + "/straight", data)
print(json.dumps({"straight": straight.history, "resumed": resumed.history,
                  "accuracy": figures["accuracy"], "images": figures["images"]}))
"""


def test_training_and_its_resume_run_on_jax(tmp_path):
    """Single-device training on JAX (tf.data still feeds it): files, exact resume,
    evaluate."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    import json

    from PIL import Image

    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text("name: tiny\ninput: {shape: [16, 16, 3]}\n"
                         "defaults: {batch_norm: {momentum: 0.9}}\nblocks: [[8, max]]\n"
                         "head: {type: global_avg, classes: 2, dropout: 0.2}\n"
                         "train: {batch_size: 8, learning_rate: 0.01}\n")
    rng = np.random.default_rng(0)
    for name, colour in (("dark", 40), ("light", 210)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for index in range(8):
            pixels = np.clip(colour + rng.normal(0, 20, (18, 18, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "data" / name / f"{index}.png")
    result = subprocess.run([sys.executable, "-c", TRAIN_ON_BACKEND, str(spec_file),
                             str(tmp_path / "data"), str(tmp_path)], cwd=ROOT,
                            env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.splitlines()[-1])
    assert [row["epoch"] for row in got["resumed"]] == [1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([row[key] for row in got["resumed"]],
                                   [row[key] for row in got["straight"]], rtol=1e-4,
                                   atol=1e-6, err_msg=key)
    assert got["images"] == 16 and 0 <= got["accuracy"] <= 1
    assert sorted(p.name for p in (tmp_path / "straight").iterdir()) == sorted(
        ["best.keras", "last.keras", "history.csv", "curves.png", "confusion.png",
         "metrics.json", "spec.yaml", "state.json", "logs"])
