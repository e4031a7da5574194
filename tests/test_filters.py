"""Filter pictures (vggspec.filters): shapes, the ascent itself, seeds, filter choice, the
batch against a one-filter-at-a-time GradientTape loop in the Keras example's style, a
batch-norm spec, and every refusal's exact message."""

from __future__ import annotations

import numpy as np
import pytest

import vggspec
from vggspec.errors import UsageError
from vggspec.filters import DEFAULT_STEP_SIZE, FilterPatterns, filter_patterns

from conftest import ROOT

# Three blocks of 8, 16 and 32 filters: the same layer kinds and names as VGG16's, small
# enough that a whole ascent takes a fraction of a second.
TINY = """\
name: tiny
input: {shape: [32, 32, 3]}
blocks:
  - [8, 8, max]
  - [16, 16, max]
  - [32, max]
head: {type: none}
"""
CONVS = "(5 convolutions: 'block1_conv1' to 'block3_conv1')"
LAYER, SIZE, STEPS = "block2_conv2", 32, 8


@pytest.fixture(scope="module")
def tiny():
    import keras

    keras.utils.set_random_seed(0)
    return vggspec.build_model(vggspec.spec_from_text(TINY))


@pytest.fixture(scope="module")
def patterns(tiny) -> FilterPatterns:
    return filter_patterns(tiny, LAYER, 6, size=SIZE, steps=STEPS)


def test_shapes_counts_and_types(patterns):
    # 32 pixels lose an eighth (4) on each side.
    assert patterns.images.shape == patterns.start.shape == (6, 24, 24, 3)
    assert patterns.images.dtype == patterns.start.dtype == np.uint8
    assert patterns.filters == [0, 1, 2, 3, 4, 5]
    assert patterns.layer == LAYER
    assert patterns.activation.shape == patterns.initial_activation.shape == (6,)
    assert not patterns.images.flags.writeable


def test_each_pattern_moves_away_from_its_start(patterns):
    moved = np.abs(patterns.images.astype(int) - patterns.start).mean(axis=(1, 2, 3))
    assert (moved > 20).all(), moved
    # Deprocessed alike: both spread around mid-grey with the same contrast.
    for pictures in (patterns.images, patterns.start):
        assert (pictures.std(axis=(1, 2, 3)) > 25).all()
        assert (np.abs(pictures.mean(axis=(1, 2, 3)) - 127.5) < 10).all()


def test_the_ascent_raises_every_filter(patterns):
    gain = patterns.activation - patterns.initial_activation
    assert (gain > 0).all(), gain
    # At the start the responses are a few units either side of 0 (-2.8 to 0.5 here).
    assert (gain > 1).all(), gain


def test_the_same_seed_gives_the_same_bytes(tiny, patterns):
    again = filter_patterns(tiny, LAYER, 6, size=SIZE, steps=STEPS)
    assert again.images.tobytes() == patterns.images.tobytes()
    assert again.start.tobytes() == patterns.start.tobytes()
    other = filter_patterns(tiny, LAYER, 6, size=SIZE, steps=STEPS, seed=1)
    for field in ("images", "start"):
        differs = (getattr(other, field) != getattr(patterns, field)).mean(axis=(1, 2, 3))
        assert (differs > 0.5).all(), (field, differs)


def test_a_list_of_filters_is_honoured_in_order(tiny, patterns):
    chosen = filter_patterns(tiny, LAYER, [5, 2, 13], size=SIZE, steps=STEPS)
    assert chosen.filters == [5, 2, 13]
    # A filter's start depends on the seed and its index, and each image ascends on its
    # own gradient: the pictures of 5 and 2 are those of the first six, whatever the batch.
    assert chosen.start[:2].tobytes() == patterns.start[[5, 2]].tobytes()
    assert np.abs(chosen.images[:2].astype(int) - patterns.images[[5, 2]]).max() <= 1
    np.testing.assert_allclose(chosen.activation[:2], patterns.activation[[5, 2]], rtol=1e-4)
    assert (chosen.activation > chosen.initial_activation).all()


def test_the_batch_matches_one_filter_at_a_time(tiny, patterns):
    """The peer: the Keras example's loop for one filter (its own GradientTape, the mean
    of the filter's map away from the border, an L2-normalised step), on the pixels
    through caffe preprocessing, the conv written out as tf.nn.conv2d before its ReLU."""
    import tensorflow as tf

    from vggspec.builder import layer_chain

    conv = tiny.get_layer(LAYER)
    before = layer_chain(tiny, None, "block2_conv1", input_shape=(SIZE, SIZE, 3))
    mean_bgr = tf.constant([103.939, 116.779, 123.68])
    step = DEFAULT_STEP_SIZE * np.sqrt(SIZE * SIZE * 3)  # at a root mean square of 1

    @tf.function
    def ascent_step(pixels, index):
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            x = before(pixels[..., ::-1] - mean_bgr, training=False)
            response = tf.nn.conv2d(x, conv.kernel, 1, "SAME") + conv.bias
            loss = tf.reduce_mean(response[:, 2:-2, 2:-2, index])  # 16x16 map, border 2
        return loss, pixels + step * tf.math.l2_normalize(tape.gradient(loss, pixels))

    for index in (1, 4):
        first, pixels = ascent_step(tf.constant(_start(index)), tf.constant(index))
        for _ in range(STEPS - 1):
            _, pixels = ascent_step(pixels, tf.constant(index))
        last, _ = ascent_step(pixels, tf.constant(index))
        ours = patterns.filters.index(index)
        np.testing.assert_allclose(first, patterns.initial_activation[ours], rtol=1e-4,
                                   atol=1e-4)
        np.testing.assert_allclose(last, patterns.activation[ours], rtol=1e-4)
        picture = _deprocess(pixels.numpy()[0])
        assert np.abs(picture.astype(int) - patterns.images[ours]).max() <= 1


def _start(index: int) -> np.ndarray:
    """The documented start of filter ``index`` for seed 0: grey, +-16 levels of noise."""
    rng = np.random.default_rng([0, index])
    return (128.0 + rng.uniform(-16, 16, (1, SIZE, SIZE, 3))).astype(np.float32)


def _deprocess(pixels: np.ndarray) -> np.ndarray:
    """The Keras example's deprocess_image, rounded, the border 4 for 32 pixels."""
    pixels = (pixels - pixels.mean()) / (pixels.std() + 1e-5) * 0.15
    pixels = pixels[4:-4, 4:-4] + 0.5
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def test_the_first_conv_and_other_preprocessing(tiny):
    for mode in ("torch", "tf", "none"):
        result = filter_patterns(tiny, "block1_conv1", [3, 0], size=16, steps=3,
                                 preprocess=mode)
        assert result.images.shape == (2, 12, 12, 3)
        assert (result.activation > result.initial_activation).all(), mode


def test_a_batch_norm_spec():
    model = vggspec.build_model(ROOT / "archs" / "vgg11_bn.yaml")
    assert type(model.get_layer("block2_conv1_bn")).__name__ == "BatchNormalization"
    result = filter_patterns(model, "block2_conv1", 4, size=24, steps=4)
    assert result.images.shape == result.start.shape == (4, 18, 18, 3)
    assert (result.activation > result.initial_activation).all()
    moved = np.abs(result.images.astype(int) - result.start).mean(axis=(1, 2, 3))
    assert (moved > 20).all(), moved


@pytest.mark.parametrize("layer, options, message", [
    ("block9_conv1", {}, f"layer 'block9_conv1' is not a layer of tiny {CONVS}; did you mean "
                         f"'block3_conv1'?"),
    ("block1_pool", {}, f"layer 'block1_pool' is not a convolution layer; the convolution "
                        f"before it is 'block1_conv2' {CONVS}"),
    ("input_layer", {}, f"layer 'input_layer' is not a convolution layer; the first "
                        f"convolution is 'block1_conv1' {CONVS}"),
    (LAYER, {"filters": 17},
     "filters must be a count from 1 to 16 (block2_conv2 has 16 filters), got 17"),
    (LAYER, {"filters": 0},
     "filters must be a count from 1 to 16 (block2_conv2 has 16 filters), got 0"),
    (LAYER, {"filters": [3, 16]},
     "filter index must be from 0 to 15 (block2_conv2 has 16 filters), got 16"),
    (LAYER, {"filters": [-1]},
     "filter index must be from 0 to 15 (block2_conv2 has 16 filters), got -1"),
    (LAYER, {"filters": []},
     "filters must list at least one filter index (block2_conv2 has 16 filters), got none"),
    (LAYER, {"filters": "3"}, "filters must be a count or a list of filter indices, got '3'"),
    (LAYER, {"filters": [1.5]}, "filter indices must be whole numbers, got 1.5"),
    (LAYER, {"steps": 0}, "steps must be a whole number of at least 1, got 0"),
    (LAYER, {"steps": 2.5}, "steps must be a whole number of at least 1, got 2.5"),
    (LAYER, {"step_size": 0}, "step_size must be a positive number, got 0"),
    (LAYER, {"step_size": float("nan")}, "step_size must be a positive number, got nan"),
    (LAYER, {"seed": -1}, "seed must be a whole number of at least 0, got -1"),
    (LAYER, {"size": 0}, "size must be a whole number of at least 1, got 0"),
    ("block3_conv1", {"size": 3}, "size 3 is too small for block3_conv1: the pooling before "
                                  "it leaves no positions; use a larger size"),
    (LAYER, {"preprocess": "bgr"},
     "preprocess must be one of caffe, torch, tf, none, got 'bgr'"),
])
def test_bad_input_is_refused_in_one_line(tiny, layer, options, message):
    with pytest.raises(UsageError) as caught:
        filter_patterns(tiny, layer, **{"steps": 1, **options})
    assert str(caught.value) == message


def test_a_long_list_of_convs_is_shortened():
    import keras

    keras.utils.set_random_seed(0)
    model = vggspec.build_model(vggspec.spec_from_text(
        "name: deep\ninput: {shape: [8, 8, 1]}\nblocks: [[" + ", ".join(["2"] * 20)
        + "]]\nhead: {type: none}\n"))
    with pytest.raises(UsageError) as caught:
        filter_patterns(model, "block1_conv99")
    assert str(caught.value) == ("layer 'block1_conv99' is not a layer of deep (20 "
                                 "convolutions: 'block1_conv1' to 'block1_conv20'); did you "
                                 "mean 'block1_conv9'?")
    with pytest.raises(UsageError) as caught:
        filter_patterns(model, "block1_conv2", 1, preprocess="caffe", steps=1)
    assert str(caught.value) == ("caffe preprocessing needs 3 channels, the spec has 1; use "
                                 "--preprocess tf or none")
    grey = filter_patterns(model, "block1_conv20", 2, size=8, steps=2, preprocess="none")
    assert grey.images.shape == (2, 6, 6, 1)


def test_an_ascent_over_the_memory_bound_is_refused_before_it_starts(tiny, monkeypatch):
    import vggspec.filters

    # block2_conv2 of the tiny spec at 32: 32*32*8 * 2 + 16*16*8 + 16*16*16 * 2 values an
    # image up to it, float32, kept and differentiated: 212,992 bytes an image.
    monkeypatch.setattr(vggspec.filters, "MAX_ASCENT_BYTES", 212_992 * 6)
    assert filter_patterns(tiny, LAYER, 6, size=32, steps=1).images.shape[0] == 6
    with pytest.raises(UsageError) as caught:
        filter_patterns(tiny, LAYER, 7, size=32, steps=1)
    assert str(caught.value) == ("7 filters of block2_conv2 at size 32 would need about "
                                 "1.4 MiB for the ascent (at most 1.2 MiB); ask for fewer "
                                 "filters or a smaller size")
