"""The builder against keras.applications, layer by layer, and against the planner."""

from __future__ import annotations

import dataclasses
import re

import keras
import numpy as np
import pytest

import vggspec
from conftest import ARCHS, ROOT
from vggspec.builder import build_model, feature_model

SETTINGS = ("filters", "kernel_size", "strides", "padding", "activation", "pool_size",
            "units", "use_bias")


def settings(layer) -> dict:
    config = layer.get_config()
    return {key: config[key] for key in SETTINGS if key in config}


def copy_weights(source, target) -> None:
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


AUTO_NAMED = ("InputLayer", "GlobalAveragePooling2D", "GlobalMaxPooling2D")


def names(model) -> list[str]:
    """Layer names; keras.applications leaves the input and global pool auto-named, and
    Keras numbers auto names within a session (input_layer_3), so drop that number."""
    return [re.sub(r"_\d+$", "", l.name) if type(l).__name__ in AUTO_NAMED else l.name
            for l in model.layers]


def assert_same_model(ours, reference, batch_shape, seed=0):
    assert [l.name for l in ours.layers] == names(ours)
    assert names(ours) == names(reference)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in reference.layers]
    assert [settings(l) for l in ours.layers] == [settings(l) for l in reference.layers]
    assert [tuple(l.output.shape) for l in ours.layers] == [
        tuple(l.output.shape) for l in reference.layers]
    assert ours.count_params() == reference.count_params()
    copy_weights(reference, ours)
    batch = np.random.default_rng(seed).uniform(-1, 1, batch_shape).astype("float32")
    expected = reference(batch, training=False).numpy()
    np.testing.assert_allclose(ours(batch, training=False).numpy(), expected, atol=1e-5, rtol=0)
    return expected


@pytest.fixture(scope="module")
def vgg16():
    return build_model(ROOT / "archs" / "vgg16.yaml")


def test_vgg16_is_keras_applications_vgg16(vgg16):
    reference = keras.applications.VGG16(weights=None)
    expected = assert_same_model(vgg16, reference, (2, 224, 224, 3))
    assert vgg16.count_params() == 138_357_544
    assert expected.shape == (2, 1000)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-5)


def test_vgg19_is_keras_applications_vgg19():
    ours = build_model(ROOT / "archs" / "vgg19.yaml")
    reference = keras.applications.VGG19(weights=None)
    assert_same_model(ours, reference, (1, 224, 224, 3))
    assert ours.count_params() == 143_667_240


@pytest.mark.parametrize("pooling, head", [(None, "none"), ("avg", "global_avg"),
                                           ("max", "global_max")])
@pytest.mark.parametrize("arch, reference", [("vgg16", keras.applications.VGG16),
                                             ("vgg19", keras.applications.VGG19)])
def test_without_top_at_a_non_square_size(arch, reference, pooling, head):
    spec = vggspec.spec_from_text(f"extends: {arch}\ninput: {{shape: [48, 80, 3]}}\n"
                                  f"head: {{type: {head}}}\n")
    ours = build_model(spec)
    theirs = reference(weights=None, include_top=False, pooling=pooling,
                       input_shape=(48, 80, 3))
    out = assert_same_model(ours, theirs, (2, 48, 80, 3), seed=1)
    assert out.shape == ((2, 1, 2, 512) if pooling is None else (2, 512))


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_every_arch_builds_as_planned(path):
    spec = vggspec.load_spec(path)
    # The smallest input keeps dense heads small; the layers are the same at any size.
    small = dataclasses.replace(spec, input_shape=(32, 32, spec.input_shape[2]))
    layout = vggspec.plan(small)
    model = build_model(layout)
    assert [l.name for l in model.layers] == [row.name for row in layout.layers]
    assert [type(l).__name__ for l in model.layers] == [row.kind for row in layout.layers]
    assert [tuple(l.output.shape)[1:] for l in model.layers] == [
        row.output_shape for row in layout.layers]
    assert [l.count_params() for l in model.layers] == [row.params for row in layout.layers]


def test_feature_model_shapes_for_one_photo(vgg16):
    features = feature_model(vgg16)
    out = features(np.zeros((1, 224, 224, 3), "float32"))
    assert {tap: tuple(value.shape) for tap, value in out.items()} == {
        "block1": (1, 112, 112, 64), "block2": (1, 56, 56, 128), "block3": (1, 28, 28, 256),
        "block4": (1, 14, 14, 512), "block5": (1, 7, 7, 512)}


def test_feature_model_with_conv_taps_matches_the_layers(vgg16):
    taps = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"]
    features = feature_model(vgg16, taps)
    image = np.random.default_rng(2).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    out = features(image)
    assert list(out) == taps
    probe = keras.Model(vgg16.input, vgg16.get_layer("block2_conv2").output)
    np.testing.assert_allclose(out["block2_conv2"].numpy(), probe(image).numpy(), rtol=1e-6)


def test_feature_model_of_a_spec_uses_its_taps_and_refuses_unknown_ones():
    spec = vggspec.spec_from_text("name: t\ninput: {shape: [16, 16, 1]}\n"
                                  "blocks: [[4, max], [{filters: 6, batch_norm: true}, none]]\n"
                                  "head: {type: none}\ntaps: [block2, block1_conv1]\n")
    features = feature_model(spec)
    assert {k: tuple(v.shape) for k, v in features.output.items()} == {
        "block2": (None, 8, 8, 6), "block1_conv1": (None, 16, 16, 4)}
    assert features.get_layer("block2_conv1_relu") is not None
    with pytest.raises(vggspec.UsageError, match="no layer or block named .block7."):
        feature_model(build_model(spec), ["block7"])


def test_lrn_layer_matches_tensorflow():
    import tensorflow as tf

    from vggspec.layers import LocalResponseNormalization

    x = np.random.default_rng(3).uniform(0, 4, (2, 5, 5, 9)).astype("float32")
    layer = LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    expected = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4,
                                                  beta=0.75).numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)
    assert LocalResponseNormalization.from_config(layer.get_config()).get_config() == \
        layer.get_config()


def test_memory_limit_applies_before_building():
    with pytest.raises(vggspec.SpecError, match="over the limit of 100.0 MiB"):
        build_model(ROOT / "archs" / "vgg16.yaml", max_weight_bytes=100 * 2**20)


def test_feature_model_of_a_spec_builds_only_up_to_its_last_tap():
    features = feature_model(ROOT / "archs" / "vgg16.yaml", ["block1_conv2", "block3_conv3"])
    names = [layer.name for layer in features.layers]
    assert names[-1] == "block3_conv3" and "fc1" not in names and "block3_pool" not in names
    assert features.count_params() == 38_720 + 221_440 + 1_475_328
