"""`vggspec export` and export_model: each format round-trips through its own runtime
(tf.saved_model, onnxruntime, LiteRT's interpreter) to Keras' outputs; bad paths are
refused before any work; an interrupted or failed export leaves nothing."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

import vggspec
from conftest import run_cli, run_python
from vggspec.builder import build_model
from vggspec.export import check_export_path, check_exportable, export_model

# Batch norm (its moving statistics must travel) and LRN (vggspec's own layer).
SMALL = ("name: small\ninput: {shape: [32, 32, 3]}\n"
         "blocks: [[{filters: 8, batch_norm: true}, max], [{filters: 16, lrn: true}, max]]\n"
         "head: {type: dense, units: [12], classes: 5}\n")


def randomise(model, seed=7):
    """Seeded weights everywhere, batch-norm statistics included (variances positive),
    so an export that dropped or reordered any of them would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               if layer.name.endswith("_bn")
                               else rng.normal(0, 0.3, w.shape).astype("float32")
                               for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def small():
    return randomise(build_model(vggspec.spec_from_text(SMALL)))


def batch(size=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (size, 32, 32, 3)).astype("float32")


def expected(model, x):
    out = model(x, training=False).numpy()
    assert out.std() > 1e-3  # not a constant output that any export would match
    return out


def test_savedmodel_round_trip(small, tmp_path):
    import keras
    import tensorflow as tf

    assert export_model(small, tmp_path / "sm", "savedmodel") == tmp_path / "sm"
    assert os.listdir(tmp_path) == ["sm"]
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    for size in (1, 3):  # the batch size stays open
        x = batch(size)
        np.testing.assert_allclose(loaded.serve(x).numpy(), expected(small, x), atol=1e-4)
    layer = keras.layers.TFSMLayer(str(tmp_path / "sm"), call_endpoint="serve")
    np.testing.assert_allclose(np.asarray(layer(batch())), expected(small, batch()),
                               atol=1e-4)


def test_savedmodel_into_an_empty_folder(small, tmp_path):
    (tmp_path / "sm").mkdir()
    export_model(small, tmp_path / "sm", "savedmodel")
    assert sorted(os.listdir(tmp_path / "sm")) == ["assets", "fingerprint.pb",
                                                   "saved_model.pb", "variables"]
    assert os.listdir(tmp_path) == ["sm"]


def test_onnx_round_trip(small, tmp_path):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    export_model(small, tmp_path / "m.onnx", "onnx")
    assert os.listdir(tmp_path) == ["m.onnx"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                   providers=["CPUExecutionProvider"])
    [given] = session.get_inputs()
    assert given.name == "input_layer" and given.shape[1:] == [32, 32, 3]
    for size in (1, 3):
        x = batch(size)
        [out] = session.run(None, {given.name: x})
        np.testing.assert_allclose(out, expected(small, x), atol=1e-4)


def test_litert_round_trip(small, tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    export_model(small, tmp_path / "m.tflite", "litert")
    assert os.listdir(tmp_path) == ["m.tflite"]
    interpreter = litert.Interpreter(model_path=str(tmp_path / "m.tflite"))
    [given] = interpreter.get_input_details()
    assert list(given["shape_signature"]) == [-1, 32, 32, 3]
    x = batch()
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, expected(small, x), atol=1e-4)


def test_an_op_tf2onnx_cannot_convert_writes_nothing(tmp_path):
    """tf2onnx only logs the ops it cannot convert and writes a file no runtime opens
    (Keras' gelu uses TensorFlow's Erfc); export refuses it instead."""
    tf2onnx = pytest.importorskip("tf2onnx")
    model = build_model(vggspec.spec_from_text(SMALL.replace("batch_norm: true",
                                                             "activation: gelu")))
    with pytest.raises(vggspec.UsageError) as raised:
        export_model(model, tmp_path / "g.onnx", "onnx")
    head = (f"{tmp_path}/g.onnx: tf2onnx {tf2onnx.__version__} cannot convert the "
            f"TensorFlow op Erfc (used by the gelu activation), first at ")
    assert re.fullmatch(re.escape(head) + r"\S*/block1_conv1\S*/Erfc; nothing written",
                        str(raised.value)), str(raised.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("out, format, message", [
    ("full", "savedmodel", "full: the folder is not empty; a SavedModel is written into "
                           "a new or empty folder"),
    ("file", "savedmodel", "file: is a file; a SavedModel is written into a new or empty "
                           "folder"),
    ("link", "savedmodel", "link: is a link; give the folder's own path"),
    ("m.onnx", "savedmodel", "m.onnx: a SavedModel is a folder, not a .onnx file "
                             "(--format onnx writes one)"),
    ("m.TFLITE", "savedmodel", "m.TFLITE: a SavedModel is a folder, not a .tflite file "
                               "(--format litert writes one)"),
    ("missing/sm", "savedmodel", "missing: no such folder"),
    ("..", "savedmodel", "..: give the SavedModel folder a name of its own, such as "
                         "TMP/../model"),
    ("m" * 242, "savedmodel", f"{'m' * 242}: the folder name is too long (at most 241 "
                              f"bytes)"),
    ("m.tflite", "onnx", "m.tflite: the file name must end in .onnx"),
    ("missing/m.onnx", "onnx", "missing: no such folder"),
    ("m.onnx", "litert", "m.onnx: the file name must end in .tflite"),
    ("empty", "litert", "empty: the file name must end in .tflite"),
])
def test_bad_output_paths_are_refused_in_one_line(tmp_path, out, format, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(vggspec.InputError) as raised:
        check_export_path(tmp_path / out, format)
    assert str(raised.value) == f"{tmp_path}/{message}".replace("TMP", str(tmp_path))


def test_an_unknown_format_and_a_missing_converter_are_usage_errors(small, tmp_path,
                                                                    monkeypatch):
    with pytest.raises(vggspec.UsageError, match=r"^unknown export format 'pb': use "
                                                 r"savedmodel, onnx, litert$"):
        export_model(small, tmp_path / "m.pb", "pb")
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now fails
    with pytest.raises(vggspec.UsageError) as raised:
        export_model(small, tmp_path / "m.onnx", "onnx")
    assert str(raised.value) == ("--format onnx needs the tf2onnx package, which is not "
                                 "installed (pip install tf2onnx)")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("out, format", [("sm", "savedmodel"), ("m.onnx", "onnx"),
                                         ("m.tflite", "litert")])
def test_an_interrupted_export_leaves_nothing(small, tmp_path, monkeypatch, out, format):
    written = []

    def interrupted(path, *args, **kwargs):
        written.append(os.path.basename(path))
        if format == "savedmodel":
            os.mkdir(path)
            path = os.path.join(path, "saved_model.pb")
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    if format == "onnx":
        pytest.importorskip("tf2onnx")
    monkeypatch.setattr(small, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_model(small, tmp_path / out, format)
    stem, suffix = os.path.splitext(out)
    assert re.fullmatch(rf"\.{re.escape(stem)}\.tmp-[0-9a-f]{{8}}{re.escape(suffix)}",
                        written[0])
    assert os.listdir(tmp_path) == []


def test_an_open_input_size_with_an_adaptive_pool_is_refused_before_building():
    layout = vggspec.plan(vggspec.spec_from_text(
        "name: o\ninput: {shape: [null, null, 3]}\nblocks: [[8, max]]\n"
        "head: {type: dense, adaptive_pool: [2, 2], units: [4], classes: 2}\n"))
    with pytest.raises(vggspec.UsageError) as raised:
        check_exportable(layout)
    assert str(raised.value) == ("adaptive_pool: an open input size (null) cannot be "
                                 "exported with adaptive_pool, which Keras computes from a "
                                 "fixed size: give input.shape a height and width")


def test_onnx_over_2_gib_is_refused_before_building():
    layout = vggspec.plan(vggspec.spec_from_text(
        "name: b\ninput: {shape: [64, 64, 3]}\nblocks: [[16, none]]\n"
        "head: {type: dense, units: [9000], classes: 2}\n"))
    check_exportable(layout, "litert")  # LiteRT writes files past 2 GiB
    with pytest.raises(vggspec.UsageError) as raised:
        check_exportable(layout, "onnx")
    assert str(raised.value) == ("--format onnx: the weights need 2.20 GiB; an ONNX file "
                                 "holds less than 2 GiB (protobuf's limit; Keras' exporter "
                                 "writes no external data)")


def test_cli_export_with_weights_matches_keras(small, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    small.save_weights(tmp_path / "w.weights.h5")
    (tmp_path / "s.yaml").write_text(SMALL)
    result = run_cli("export", str(tmp_path / "s.yaml"), "--weights",
                     str(tmp_path / "w.weights.h5"), "--format", "onnx", "--out",
                     str(tmp_path / "m.onnx"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {tmp_path}/m.onnx\n"
    assert result.stderr == ("building small: 13,789 parameters (0.00 GiB float32)\n"
                             "small on tensorflow, CPU\n")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                   providers=["CPUExecutionProvider"])
    [out] = session.run(None, {"input_layer": batch()})
    np.testing.assert_allclose(out, expected(small, batch()), atol=1e-4)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "s.yaml", "w.weights.h5"]


def test_cli_export_checks_everything_before_tensorflow(tmp_path):
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "x").write_text("x")
    result = run_cli("export", "vgg16", "--format", "savedmodel", "--out",
                     str(tmp_path / "sm"))
    assert (result.returncode, result.stderr) == (
        2, f"{tmp_path}/sm: the folder is not empty; a SavedModel is written into a new or "
           f"empty folder\n")
    result = run_cli("export", "vgg16", "--format", "litert", "--out",
                     str(tmp_path / "m.tflite"), "--weights", str(tmp_path / "none.h5"))
    assert (result.returncode, result.stderr) == (2, f"{tmp_path}/none.h5: no such file\n")
    # No tf2onnx: one line naming it, before TensorFlow is imported.
    code = ("import sys\nsys.modules['tf2onnx'] = None\nfrom vggspec.cli import main\n"
            "code = main(sys.argv[1:])\nprint('tensorflow' in sys.modules)\nsys.exit(code)")
    result = run_python(code, "export", "vgg16", "--format", "onnx", "--out",
                        str(tmp_path / "m.onnx"))
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "False\n", "--format onnx needs the tf2onnx package, which is not installed "
                      "(pip install tf2onnx)\n")
    assert sorted(os.listdir(tmp_path)) == ["sm"]
