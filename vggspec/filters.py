"""Filter pictures: the input pattern that excites each filter of a conv layer most.

    model + conv layer --ascend--> one input pattern per filter (RGB uint8)

Gradient ascent from seeded grey noise, as in Keras' example "Visualizing what convnets
learn" and Chollet's VGG16 original: a fixed number of steps, each along the gradient of
the filter's mean response (a border left out, so that the padding does not win),
normalised per image; the result is standardised, scaled, clipped and its border cut.
Every chosen filter is optimised in the same batch (image i excites filter i): one
vector-Jacobian product per step (vggspec.backends.compiled_vjp) gives each image its
own gradient, on whichever Keras backend runs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import UsageError, clip

# A conv stack takes any size; 64 pixels hold several receptive fields of the middle
# layers (block3_conv1 sees 24 pixels) and keep 16 filters of VGG16's block3_conv1 at
# about 12 s on two CPU cores (benchmarks/bench_filters.py).
DEFAULT_SIZE = 64
# Chollet's VGG16 original takes 20 steps (the Keras example 30, at 180x180).
DEFAULT_STEPS = 20
# Pixel levels (0..255) per step along the gradient scaled to a root mean square of 1.
# The Keras example moves 10 / sqrt(180 * 180 * 3) * 127.5 = 4.1 levels a step for 30
# steps; 6 levels for 20 steps covers the same distance, 120 levels.
DEFAULT_STEP_SIZE = 6.0
# The start: grey (128) with uniform noise of +-16 levels per channel, the Keras
# example's (uniform(0, 1) - 0.5) * 0.25 in -1..1.
GREY, NOISE = 128.0, 16.0
# The border, an eighth of the side each way, that the loss leaves out and the picture
# loses (the example: 2 positions of a stride-8 layer, and 25 of 180 pixels).
BORDER_FRACTION = 1 / 8
# The ascent keeps each layer's output and gradient for every image: at most this much.
MAX_ASCENT_BYTES = 4 * 2 ** 30
# Deprocessing: standardised values times this, around mid-grey (the example's 0.15).
CONTRAST = 0.15


@dataclass(frozen=True, eq=False)
class FilterPatterns:
    """The patterns of some filters of one conv layer, in the order asked for.

    ``images`` and ``start`` are (n, h, w, channels) uint8 (read-only), RGB for a
    3-channel spec whatever the preprocessing: the ascended patterns and the seeded
    noise they began as, deprocessed alike. ``activation`` and ``initial_activation``
    are (n,) float32: each filter's mean response before its ReLU, border left out (what
    the ascent raises), at the end and at the start.
    """

    images: np.ndarray
    filters: list[int]
    layer: str
    start: np.ndarray
    activation: np.ndarray
    initial_activation: np.ndarray


def filter_patterns(model, layer: str, filters=16, *, size: int | None = None,
                    steps: int = DEFAULT_STEPS, step_size: float = DEFAULT_STEP_SIZE,
                    seed: int = 0, preprocess: str = "caffe") -> FilterPatterns:
    """The input pattern that excites each chosen filter of ``layer`` most.

    ``model`` is a chain model from build_model, ``layer`` one of its Conv2D layers.
    The ascent climbs the filter's mean response before its ReLU (VGG fuses the ReLU
    into the conv; in a batch-norm spec, after the conv's batch norm), so that a filter
    which grey noise leaves off everywhere still has a gradient. ``filters``: a count (the first
    N) or a list of filter indices. ``size``: the square input side (default 64); the
    pictures lose an eighth of it on each side. ``step_size``: pixel levels (0..255)
    per step, along each image's gradient scaled to a root mean square of 1; pixels are
    not clipped on the way (nor are the example's). ``preprocess`` (see
    vggspec.features.PREPROCESSING) turns pixels 0..255 into model input; the ascent
    runs on the pixels, so a step means the same in every mode and the pictures keep
    the pixels' RGB order (caffe's BGR is the model's business). The same seed gives
    the same bytes, and a filter's start depends only on the seed and its index.
    Raises UsageError for a layer that is not a convolution of the model, a filter the
    layer lacks, a size too small for the layer, steps below 1, a step size that is
    not positive, or a preprocessing the model's channels cannot take.

    >>> patterns = filter_patterns(build_model("archs/vgg16.yaml"), "block3_conv1", 4, steps=2)
    >>> patterns.images.shape, patterns.filters
    ((4, 48, 48, 3), [0, 1, 2, 3])
    """
    from .backends import compiled_vjp
    from .features import check_preprocessing, preprocess as prepare

    conv = _conv_layer(model, layer)
    chosen = chosen_filters(filters, conv.name, conv.filters)
    _check_number("steps", steps, whole=True)
    _check_number("step_size", step_size)
    _check_number("seed", seed, whole=True, least=0)
    size = DEFAULT_SIZE if size is None else size
    _check_number("size", size, whole=True)
    channels = int(model.input.shape[-1])
    check_preprocessing(preprocess, channels)

    chain = _response_chain(model, conv, size, channels)
    _check_memory(chain, len(chosen), conv.name, size)
    weights = _loss_weights(chain.output.shape[1:3], size, chosen, conv.filters)
    ascend = compiled_vjp(chain)
    matrix = _pixel_gradient_matrix(preprocess, channels)
    start = np.stack([_noise(seed, index, size, channels) for index in chosen])
    pixels = start.copy()
    for step in range(steps + 1):
        responses, gradient = ascend(prepare(pixels, preprocess), weights)
        scores = (responses * weights).sum(axis=(1, 2, 3), dtype=np.float64)
        if step == 0:
            initial = scores
        if step == steps:
            break
        gradient = gradient @ matrix.T
        scale = np.sqrt(np.mean(np.square(gradient, dtype=np.float64), axis=(1, 2, 3)))
        # An image whose gradient vanishes (every ReLU before the layer off) stays put.
        scale = np.where(scale > 0, step_size / np.maximum(scale, 1e-30), 0.0)
        pixels += (gradient * scale[:, None, None, None]).astype(np.float32)
    border = _border(size)
    return FilterPatterns(images=_frozen(_deprocess(pixels, border)), filters=chosen,
                          layer=conv.name, start=_frozen(_deprocess(start, border)),
                          activation=_frozen(scores.astype(np.float32)),
                          initial_activation=_frozen(initial.astype(np.float32)))


def _conv_layer(model, name):
    """The model's Conv2D layer called ``name``, or UsageError naming the choices (the
    check Grad-CAM's layer gets too)."""
    from .attribution import check_conv_layer

    return model.get_layer(check_conv_layer(model, str(name), "layer"))


def chosen_filters(filters, layer: str, count: int) -> list[int]:
    """``filters`` (a count, or a list of indices) as a list of indices into the
    ``count`` filters of ``layer``, or UsageError; the CLI asks before building.

    >>> chosen_filters(3, "block3_conv1", 256), chosen_filters([7, 2], "block3_conv1", 256)
    ([0, 1, 2], [7, 2])
    """
    has = f"{layer} has {count:,} filter{'s' * (count != 1)}"
    if isinstance(filters, numbers.Integral) and not isinstance(filters, bool):
        if not 1 <= filters <= count:
            raise UsageError(f"filters must be a count from 1 to {count:,} ({has}), got "
                             f"{int(filters):,}")
        return list(range(int(filters)))
    if isinstance(filters, (str, bytes)) or not hasattr(filters, "__iter__"):
        raise UsageError(f"filters must be a count or a list of filter indices, got "
                         f"{_shown(filters)}")
    chosen = list(filters)
    if not chosen:
        raise UsageError(f"filters must list at least one filter index ({has}), got none")
    for index in chosen:
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise UsageError(f"filter indices must be whole numbers, got {_shown(index)}")
        if not 0 <= index < count:
            raise UsageError(f"filter index must be from 0 to {count - 1:,} ({has}), got "
                             f"{int(index):,}")
    twice = sorted({int(index) for index in chosen if chosen.count(index) > 1})
    if twice:
        raise UsageError(f"filter {twice[0]:,} is listed more than once; each filter is "
                         f"drawn once")
    return [int(index) for index in chosen]


def _check_number(name: str, value, whole: bool = False, least: int = 1) -> None:
    """UsageError unless ``value`` is a whole number >= ``least`` (or, not ``whole``,
    a positive finite number)."""
    if whole:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
            raise UsageError(f"{name} must be a whole number of at least {least}, got "
                             f"{_shown(value)}")
    elif (not isinstance(value, numbers.Real) or isinstance(value, bool)
          or not math.isfinite(value) or value <= 0):
        raise UsageError(f"{name} must be a positive number, got {_shown(value)}")


def _shown(value) -> str:
    """A received value in a message: a number as written, anything else as its repr."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return clip(str(value))
    return clip(repr(value))


def _response_chain(model, conv, size: int, channels: int):
    """The layers from the input up to ``conv``'s unit at size x size, its ReLU left out
    (fused into a plain VGG's conv, after a batch-norm spec's batch norm); UsageError
    when the size leaves it no positions."""
    from .attribution import unit_end
    from .builder import layer_chain

    try:
        # Up to the conv's ReLU, which logits=True leaves out: in a batch-norm spec the
        # response is then the batch-normalised one, as a plain VGG's conv gives.
        chain = layer_chain(model, None, unit_end(model, conv.name),
                            input_shape=(size, size, channels), logits=True)
    except UsageError:
        raise
    except ValueError:  # Keras: a pooling window larger than what is left
        chain = None
    if chain is None or not all(chain.output.shape[1:3]):
        raise UsageError(f"size {size} is too small for {conv.name}: the pooling "
                         f"before it leaves no positions; use a larger size")
    return chain


def _border(size: int) -> int:
    return int(size * BORDER_FRACTION)


def _check_memory(chain, count: int, layer: str, size: int) -> None:
    """UsageError when the ascent would hold more than MAX_ASCENT_BYTES: every layer's
    float32 output for every image, kept for the backward pass, and its gradient."""
    values = sum(math.prod(int(side) for side in layer.output.shape[1:])
                 for layer in chain.layers[1:])
    need = 2 * 4 * values * count
    if need > MAX_ASCENT_BYTES:
        from .plan import format_bytes

        raise UsageError(f"{count:,} filters of {layer} at size {size} would need about "
                         f"{format_bytes(need)} for the ascent (at most "
                         f"{format_bytes(MAX_ASCENT_BYTES)}); ask for fewer filters or a "
                         f"smaller size")


def _loss_weights(shape, size: int, chosen: list[int], count: int) -> np.ndarray:
    """(n, h, w, filters): image i's weight 1/positions on filter chosen[i] at the
    positions away from the border (at least one), 0 elsewhere; the vector-Jacobian
    product with it is each image's gradient of its filter's mean response."""
    height, width = (int(side) for side in shape)
    margins = [min(math.ceil(_border(size) * side / size), (side - 1) // 2)
               for side in (height, width)]
    weights = np.zeros((len(chosen), height, width, count), np.float32)
    rows = slice(margins[0], height - margins[0])
    columns = slice(margins[1], width - margins[1])
    positions = (height - 2 * margins[0]) * (width - 2 * margins[1])
    for image, index in enumerate(chosen):
        weights[image, rows, columns, index] = 1.0 / positions
    return weights


def _pixel_gradient_matrix(mode: str, channels: int) -> np.ndarray:
    """M with d/d pixels = d/d input @ M.T: every preprocessing mode maps each pixel's
    channels affinely (caffe also reverses them), so its Jacobian is read off
    features.preprocess itself, on the unit pixels."""
    from .features import preprocess

    offset = preprocess(np.zeros((1, channels), np.float32), mode)
    return (preprocess(np.eye(channels, dtype=np.float32), mode) - offset).astype(np.float32)


def _noise(seed: int, index: int, size: int, channels: int) -> np.ndarray:
    """Filter ``index``'s start: grey with seeded noise, the same whichever other
    filters are chosen with it."""
    rng = np.random.default_rng([seed, index])
    return (GREY + rng.uniform(-NOISE, NOISE, (size, size, channels))).astype(np.float32)


def _deprocess(pixels: np.ndarray, border: int) -> np.ndarray:
    """The Keras example's deprocessing, per image: standardise, scale by CONTRAST
    around mid-grey, cut the border, clip to 0..255."""
    pixels = pixels.astype(np.float64)
    pixels -= pixels.mean(axis=(1, 2, 3), keepdims=True)
    pixels /= pixels.std(axis=(1, 2, 3), keepdims=True) + 1e-5
    pixels = pixels * CONTRAST + 0.5
    if border:
        pixels = pixels[:, border:-border, border:-border]
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
