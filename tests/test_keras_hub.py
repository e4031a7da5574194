"""keras-hub VGG `.weights.h5` files (VGGBackbone's and VGGImageClassifier's), loaded
by layer; the files are written here with h5py, in the layout keras-hub 0.32 writes
(checked once against real keras-hub files), so the tests do not need keras-hub."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import vggspec
from vggspec.builder import build_model
from vggspec.errors import InputError
from vggspec.weights import load_weights

BLOCKS = "name: t\ninput: {shape: [32, 32, 3]}\nblocks: [[4, max], [8, 8, max]]\n"
CLASSIFIER = "head: {type: dense, units: [16, 16], classes: 5, dropout: 0.5}"
FEATURES = "head: {type: none}"


def model(head, seed=None):
    built = build_model(vggspec.spec_from_text(BLOCKS + head))
    if seed is not None:
        rng = np.random.default_rng(seed)
        built.set_weights([rng.standard_normal(w.shape).astype("float32")
                           for w in built.get_weights()])
    return built


def layer_group(parent, name, arrays=()):
    group = parent.create_group(name)
    variables = group.create_group("vars")
    for index, array in enumerate(arrays):
        variables.create_dataset(str(index), data=array)


def backbone_layers(group, source, input_layer=True):
    """VGGBackbone's layers as Keras names them: by class, counted within the backbone.
    In a classifier its input layer is the classifier's, saved there once."""
    if input_layer:
        layer_group(group, "input_layer")
    convs = [layer for layer in source.layers if type(layer).__name__ == "Conv2D"]
    for index, layer in enumerate(convs):
        layer_group(group, "conv2d" if index == 0 else f"conv2d_{index}", layer.get_weights())
    for index in range(2):
        layer_group(group, "max_pooling2d" if index == 0 else f"max_pooling2d_{index}")


def write_backbone(source, path):
    """keras_hub.models.VGGBackbone.save_weights: a flat Keras 3 layout."""
    with h5py.File(path, "w") as handle:
        backbone_layers(handle.create_group("layers"), source)
        handle.create_group("vars")
    return path


def write_classifier(source, path):
    """keras_hub.models.VGGImageClassifier(pooling="flatten").save_weights: the backbone
    and the head (a keras.Sequential: flatten, fc1, dropout, fc2, predictions) are
    models inside the model, stored under their class names."""
    with h5py.File(path, "w") as handle:
        layers = handle.create_group("layers")
        layer_group(layers, "input_layer")
        backbone = layers.create_group("vgg_backbone")
        backbone_layers(backbone.create_group("layers"), source, input_layer=False)
        backbone.create_group("vars")
        head = layers.create_group("sequential")
        head_layers = head.create_group("layers")
        layer_group(head_layers, "flatten")
        layer_group(head_layers, "dense", source.get_layer("fc1").get_weights())
        layer_group(head_layers, "dropout")
        layer_group(head_layers, "dense_1", source.get_layer("fc2").get_weights())
        layer_group(head_layers, "dense_2", source.get_layer("predictions").get_weights())
        head.create_group("vars")
        for index in range(2):  # keras-hub compiles its tasks: iterations, learning rate
            handle.create_dataset(f"optimizer/vars/{index}", data=np.int64(0))
        handle.create_group("vars")
    return path


def assert_same(target, source, names):
    for name in names:
        for got, want in zip(target.get_layer(name).get_weights(),
                             source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)


CONVS = ("block1_conv1", "block2_conv1", "block2_conv2")


@pytest.fixture(scope="module")
def source():
    return model(CLASSIFIER, seed=1)


@pytest.fixture(scope="module")
def classifier_file(source, tmp_path_factory):
    return write_classifier(source, tmp_path_factory.mktemp("kh") / "vgg.weights.h5")


def test_backbone_file_loads_into_a_feature_model(source, tmp_path):
    path = write_backbone(source, tmp_path / "backbone.weights.h5")
    target = model(FEATURES, seed=2)
    assert load_weights(target, path).loaded == CONVS
    assert_same(target, source, CONVS)


def test_classifier_file_loads_every_layer(source, classifier_file):
    target = model(CLASSIFIER, seed=2)
    report = load_weights(target, classifier_file)
    assert report.loaded == CONVS + ("fc1", "fc2", "predictions")
    assert report.skipped == ()
    assert_same(target, source, report.loaded)


def test_classifier_file_loads_into_a_feature_model(source, classifier_file):
    target = model(FEATURES, seed=2)
    assert load_weights(target, classifier_file).loaded == CONVS
    assert_same(target, source, CONVS)


def test_other_class_count_needs_partial(source, classifier_file):
    target = model("head: {type: dense, units: [16, 16], classes: 7}", seed=2)
    before = target.get_layer("predictions").get_weights()
    with pytest.raises(InputError, match=r"predictions has \(16,5\) \(5,\) in the file"):
        load_weights(target, classifier_file)
    assert_same(target, model("head: {type: dense, units: [16, 16], classes: 7}", seed=2),
                CONVS)  # all or nothing: still the initial weights
    report = load_weights(target, classifier_file, partial=True)
    assert report.loaded == CONVS + ("fc1", "fc2")
    assert [reason.split()[0] for reason in report.skipped] == ["predictions"]
    assert_same(target, source, report.loaded)
    for got, want in zip(target.get_layer("predictions").get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_nested_file_without_the_head_reports_it_missing(source, tmp_path):
    path = write_classifier(source, tmp_path / "vgg.weights.h5")
    with h5py.File(path, "a") as handle:
        del handle["layers/sequential"]
    with pytest.raises(InputError, match="fc1 missing from the file"):
        load_weights(model(CLASSIFIER), path)
    assert load_weights(model(FEATURES), path).loaded == CONVS


def test_nested_link_to_another_file_is_refused(source, tmp_path):
    path = write_classifier(source, tmp_path / "vgg.weights.h5")
    with h5py.File(path, "a") as handle:
        del handle["layers/vgg_backbone/layers/conv2d_1"]
        handle["layers/vgg_backbone/layers/conv2d_1"] = h5py.ExternalLink("other.h5", "/x")
    with pytest.raises(InputError, match="links to another file"):
        load_weights(model(FEATURES), path)


def test_two_backbones_are_refused(source, tmp_path):
    path = write_classifier(source, tmp_path / "vgg.weights.h5")
    with h5py.File(path, "a") as handle:
        handle.copy("layers/vgg_backbone", "layers/other_backbone")
    with pytest.raises(InputError, match="2 backbones nested in one model"):
        load_weights(model(FEATURES), path)


def test_too_many_entries_are_refused_unread(tmp_path):
    from vggspec import weights

    path = tmp_path / "many.weights.h5"
    with h5py.File(path, "w") as handle:
        layers = handle.create_group("layers")
        for index in range(weights.MAX_LAYER_NAMES + 1):
            layers.create_group(f"g{index}")
    with pytest.raises(InputError, match="entries, more than"):
        load_weights(model(FEATURES), path)
