"""Grad-CAM: a hand-set network whose answer is known, the formula computed here on its
own, and Keras' Grad-CAM example (GradientTape on an intermediate output) as a peer."""

from __future__ import annotations

import numpy as np
import pytest

import vggspec
from vggspec.attribution import GradCam, check_conv_layer, grad_cam, upsample
from vggspec.errors import UsageError

# One 1x1 conv with two filters over an 8x8 grey image, a 2x2 max pool, and a dense
# classifier on the flattened 4x4x2 map: small enough to differentiate by hand.
PROBE = """\
name: cam_probe
input: {shape: [8, 8, 1]}
blocks:
  - [{filters: 2, kernel: 1}, max]
head: {type: dense, units: [], classes: 2, activation: softmax}
"""
FILTER_GAINS = np.array([1.0, 0.5], np.float32)


@pytest.fixture(scope="module")
def probe():
    """The probe with hand-set weights, and an image that is bright only in its top-left
    quarter. Class 0 weighs every pooled position positively, class 1 negatively, so
    only the bright quarter can drive class 0, and nothing supports class 1."""
    model = vggspec.build_model(vggspec.spec_from_text(PROBE))
    model.get_layer("block1_conv1").set_weights([FILTER_GAINS.reshape(1, 1, 1, 2),
                                                 np.zeros(2, np.float32)])
    rng = np.random.default_rng(0)
    dense = np.stack([rng.uniform(0.5, 1.5, 32), -rng.uniform(0.5, 1.5, 32)], axis=1)
    model.get_layer("predictions").set_weights([dense.astype(np.float32),
                                                np.zeros(2, np.float32)])
    image = rng.uniform(0, 0.02, (8, 8, 1)).astype(np.float32)  # no ties in a pool window
    image[:4, :4] += 5.0
    return model, dense, image


def grad_cam_by_hand(dense: np.ndarray, image: np.ndarray, class_index: int) -> np.ndarray:
    """The Grad-CAM formula written out for the probe: A = ReLU(x * gains); the score's
    gradient reaches each window's maximum with the dense weight of its pooled
    position (flattened row-major: row, column, channel); weights = mean gradient."""
    activations = np.maximum(image * FILTER_GAINS, 0)                  # (8, 8, 2)
    gradient = np.zeros_like(activations)
    for row in range(4):
        for column in range(4):
            for channel in range(2):
                window = activations[2 * row:2 * row + 2, 2 * column:2 * column + 2, channel]
                i, j = np.unravel_index(window.argmax(), window.shape)
                gradient[2 * row + i, 2 * column + j, channel] = \
                    dense[(row * 4 + column) * 2 + channel, class_index]
    weights = gradient.mean(axis=(0, 1))
    return np.maximum((activations * weights).sum(axis=2), 0)


def test_grad_cam_equals_the_formula_and_sits_on_the_only_region_that_can_drive_the_class(
        probe):
    model, dense, image = probe
    heat = grad_cam(model, image, 0, "block1_conv1")
    assert heat.shape == (8, 8) and heat.dtype == np.float32
    np.testing.assert_allclose(heat, grad_cam_by_hand(dense, image, 0), rtol=1e-5, atol=1e-7)
    assert heat[:4, :4].sum() / heat.sum() > 0.98
    # Class 1 weighs every position negatively: Grad-CAM's ReLU leaves nothing.
    assert np.all(grad_cam(model, image, 1, "block1_conv1") == 0)
    # Without a class, the top class (0 here) is chosen, and the default layer is the
    # last convolution.
    maps, classes, scores = GradCam(model)(image[None])
    assert classes.tolist() == [0]
    np.testing.assert_array_equal(maps[0], heat)
    logits = np.maximum(image * FILTER_GAINS, 0).reshape(4, 2, 4, 2, 2).max(axis=(1, 3))
    np.testing.assert_allclose(scores, [logits.reshape(-1) @ dense[:, 0]], rtol=1e-5)


def test_grad_cam_matches_keras_own_example_on_a_vgg(tmp_path):
    """The peer: Keras' Grad-CAM example (one model with the conv map and predictions as
    outputs, GradientTape, the pre-softmax score) on a small VGG with seeded weights."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    model = vggspec.build_model(vggspec.spec_from_text(
        "name: small\ninput: {shape: [32, 32, 3]}\nblocks: [[8, 8, max], [16, 16, max]]\n"
        "head: {type: dense, units: [32], classes: 5, activation: linear}\n"))
    images = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    both = keras.Model(model.input, [model.get_layer("block2_conv2").output, model.output])
    expected = []
    for image in images:
        with tf.GradientTape() as tape:
            conv, scores = both(image[None])
            score = scores[0, 2]
        gradient = tape.gradient(score, conv)[0].numpy()
        weights = gradient.mean(axis=(0, 1))
        expected.append(np.maximum((conv[0].numpy() * weights).sum(axis=2), 0))
    maps, classes, _ = GradCam(model, "block2_conv2")(images, [2, 2, 2])
    assert maps.shape == (3, 16, 16) and classes.tolist() == [2, 2, 2]
    np.testing.assert_allclose(maps, np.stack(expected), rtol=1e-4, atol=1e-6)
    assert all(m.max() > 0 for m in maps)


def test_bad_layers_and_classes_are_one_line(probe):
    model, _, image = probe
    with pytest.raises(UsageError) as error:
        GradCam(model, "block1_pool")
    assert str(error.value) == ("--cam-layer 'block1_pool' is not a convolution layer; the "
                                "convolution before it is 'block1_conv1' (1 convolution: "
                                "'block1_conv1')")
    with pytest.raises(UsageError) as error:
        grad_cam(model, image, 0, "block9_conv1")
    assert str(error.value) == ("--cam-layer 'block9_conv1' is not a layer of cam_probe (1 "
                                "convolution: 'block1_conv1'); did you mean 'block1_conv1'?")
    with pytest.raises(UsageError) as error:
        grad_cam(model, image, 2)
    assert str(error.value) == "class index must be from 0 to 1, got [2]"
    base = vggspec.build_model(vggspec.spec_from_text(PROBE.replace(
        "{type: dense, units: [], classes: 2, activation: softmax}", "{type: none}")))
    with pytest.raises(UsageError) as error:
        GradCam(base)
    assert str(error.value) == "cam_probe ends in block1_pool, not a classifier: Grad-CAM " \
                               "needs class scores"
    layout = vggspec.plan(vggspec.spec_from_text(PROBE))
    assert check_conv_layer(layout, "block1_conv1") == "block1_conv1"
    with pytest.raises(UsageError, match="^--layer 'flatten' is not a convolution layer"):
        check_conv_layer(layout, "flatten")


def test_upsample_scales_to_the_image_and_to_its_maximum():
    heat = np.array([[0.0, 2.0], [1.0, 4.0]], np.float32)
    big = upsample(heat, 6, 4)
    assert big.shape == (6, 4)
    assert big.max() == pytest.approx(1.0) and big.min() == pytest.approx(0.0)
    assert big[-1, -1] > big[0, 0]
    assert np.all(upsample(np.zeros((3, 3)), 5, 5) == 0)


def test_a_batch_norm_spec_takes_the_map_after_the_convs_batch_norm_and_relu():
    """A batch-norm spec's conv is linear; its unit ends in block1_conv1_relu, which is
    what a plain VGG's block1_conv1 outputs. Peer: Keras' example at that layer."""
    import keras
    import tensorflow as tf

    from vggspec.attribution import unit_end

    keras.utils.set_random_seed(4)
    model = vggspec.build_model(vggspec.spec_from_text(
        "name: bn\ninput: {shape: [16, 16, 3]}\ndefaults: {batch_norm: {momentum: 0.9}}\n"
        "blocks: [[4, max], [8, max]]\nhead: {type: global_avg, classes: 3}\n"))
    rng = np.random.default_rng(5)
    for layer in model.layers:  # statistics and scales that are not 0 and 1
        if "_bn" in layer.name:
            layer.set_weights([rng.uniform(-1.5, 1.5, w.shape).astype("f4") + (i == 3)
                               * 2.0 for i, w in enumerate(layer.get_weights())])
    assert unit_end(model, "block2_conv1") == "block2_conv1_relu"
    assert unit_end(vggspec.build_model("archs/vgg11.yaml"), "block1_conv1") == "block1_conv1"
    image = rng.uniform(-1, 1, (16, 16, 3)).astype(np.float32)
    both = keras.Model(model.input, [model.get_layer("block2_conv1_relu").output,
                                     model.get_layer("predictions").input])
    with tf.GradientTape() as tape:
        conv, pooled = both(image[None])
        kernel = model.get_layer("predictions").kernel
        score = tf.reduce_sum(pooled[0] * kernel[:, 1]) + model.get_layer("predictions").bias[1]
    weights = tape.gradient(score, conv)[0].numpy().mean(axis=(0, 1))
    expected = np.maximum((conv[0].numpy() * weights).sum(axis=2), 0)
    np.testing.assert_allclose(grad_cam(model, image, 1, "block2_conv1"), expected,
                               rtol=1e-4, atol=1e-6)
