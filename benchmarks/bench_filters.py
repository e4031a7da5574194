"""Filter pictures: our batched ascent against the Keras example's one filter at a time.

    python benchmarks/bench_filters.py [--filters 16] [--layer block3_conv1] [--repeats 3]

VGG16 from archs/vgg16.yaml with untrained weights (seeded), the first --filters filters
of --layer, at filter_patterns' defaults (64x64, 20 steps of 6 pixel levels). Ours:
``filter_patterns``, every filter in one batch, one vector-Jacobian product a step. The
peer: the loop of Keras' example "Visualizing what convnets learn", one filter after
another, each with its own GradientTape steps (an L2-normalised gradient, the mean of
the filter's map away from the border) on the same sub-model, from the same start; its
step function is traced once for all filters (the example passes the filter index as
a Python int, which traces it again for every filter). Both in this process, each run
timed whole (tracing included, as a user pays it); the medians of --repeats runs and
their ratio are printed, then the mean response each way reaches: the same ascent, so
the same figures (the pictures themselves drift apart in places, since the ascent
amplifies float rounding, which the two ways do in different orders).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from vggspec import filters as filter_pictures  # noqa: E402
from vggspec.backends import start  # noqa: E402
from vggspec.builder import build_model  # noqa: E402
from vggspec.features import CAFFE_MEAN_BGR  # noqa: E402
from vggspec.filters import filter_patterns  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "archs" / "vgg16.yaml"


def keras_example(model, layer: str, indices: list[int], size: int, steps: int,
                  step_size: float) -> np.ndarray:
    """The example's loop, for each filter in turn: the pictures (n, size, size, 3) in
    pixels, before deprocessing."""
    import tensorflow as tf

    conv = model.get_layer(layer)
    # The same sub-model as ours: the input up to the conv, before its ReLU.
    feature_extractor = filter_pictures._response_chain(model, conv, size, 3)
    height = int(feature_extractor.output.shape[1])
    # The rows our loss leaves out at this layer (2 of 16 at 64x64 for block3).
    scored = filter_pictures._loss_weights((height, height), size, [0], conv.filters)
    border = int(np.flatnonzero(scored[0].any(axis=(1, 2)))[0])
    mean_bgr = tf.constant(CAFFE_MEAN_BGR)
    learning_rate = float(step_size * np.sqrt(size * size * 3))  # our step at an RMS of 1

    def compute_loss(input_image, filter_index):
        activation = feature_extractor(input_image[..., ::-1] - mean_bgr, training=False)
        filter_activation = activation[:, border:-border, border:-border, filter_index]
        return tf.reduce_mean(filter_activation)

    @tf.function
    def gradient_ascent_step(img, filter_index, learning_rate):
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss = compute_loss(img, filter_index)
        grads = tape.gradient(loss, img)
        grads = tf.math.l2_normalize(grads)
        img += learning_rate * grads
        return loss, img

    pictures = []
    for index in indices:
        img = tf.constant(filter_pictures._noise(0, index, size, 3)[None])
        for _ in range(steps):
            loss, img = gradient_ascent_step(img, tf.constant(index), learning_rate)
        pictures.append(img.numpy()[0])
    return np.stack(pictures)


def mean_responses(model, layer: str, indices: list[int], pixels: np.ndarray) -> np.ndarray:
    """Each picture's mean response of its filter, border left out, as ours are scored."""
    conv = model.get_layer(layer)
    size = pixels.shape[1]
    chain = filter_pictures._response_chain(model, conv, size, 3)
    responses = np.asarray(chain(pixels[..., ::-1] - CAFFE_MEAN_BGR, training=False))
    weights = filter_pictures._loss_weights(responses.shape[1:3], size, indices, conv.filters)
    return (responses * weights).sum(axis=(1, 2, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--layer", default="block3_conv1")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    where = start()

    import keras

    keras.utils.set_random_seed(0)
    model = build_model(SPEC)
    size = filter_pictures.DEFAULT_SIZE
    steps = filter_pictures.DEFAULT_STEPS
    step_size = filter_pictures.DEFAULT_STEP_SIZE
    indices = list(range(args.filters))

    ours, peer = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        patterns = filter_patterns(model, args.layer, args.filters)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        pixels = keras_example(model, args.layer, indices, size, steps, step_size)
        peer.append(time.perf_counter() - started)
    reached = mean_responses(model, args.layer, indices, pixels)
    pictures = filter_pictures._deprocess(pixels, filter_pictures._border(size))
    apart = np.abs(patterns.images.astype(int) - pictures.astype(int))
    ours_median, peer_median = statistics.median(ours), statistics.median(peer)
    print(f"VGG16 {args.layer}, {args.filters} filters, {size}x{size}, {steps} steps, "
          f"median of {args.repeats} runs ({where})")
    print(f"filter_patterns (one batch)        {ours_median:7.2f} s")
    print(f"Keras example (one filter a time)  {peer_median:7.2f} s")
    print(f"ratio {peer_median / ours_median:.2f}x (peer time / ours)")
    gap = np.abs(patterns.activation - reached) / np.abs(reached)
    print(f"mean response reached: ours {patterns.activation.mean():.3f}, peer "
          f"{reached.mean():.3f} (each filter within {gap.max():.2%}); pictures apart by "
          f"{apart.mean():.2f} levels of 255 on average (the ascent amplifies "
          f"float rounding: a start moved by 1e-5 of a level ends as far apart)")


if __name__ == "__main__":
    main()
