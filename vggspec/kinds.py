"""The layer kinds vggspec plans, builds and draws: one registry the three share.

    planned row (kind, config) --KINDS--> output shape, weights, MACs | Keras class | box

Each kind is a Keras layer class, named as Keras names it, with the arithmetic the
planner needs (output shape, trainable and non-trainable weights, multiply-accumulates)
and how the diagram draws it. A new kind is one entry here; asking for a kind that is
not here fails loudly everywhere, so the builder and the diagram cannot drift from the
planner. Plain Python: no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Shape = tuple  # (height, width, channels) inside the conv blocks, (features,) after them
Config = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """How one Keras layer class is planned and drawn.

    ``shape(config, input)`` is the output shape (None for an open size);
    ``weights(config, input)`` is (trainable, non-trainable) weight counts;
    ``macs(config, input, output)`` counts multiply-accumulates, which vggspec counts for
    convs and dense layers only, as fvcore's conv+linear count does (None for an open
    size); ``style`` is the diagram's colour key, None for layers drawn as part of the one
    before (activations) or not at all (flatten, dropout); ``label`` is the paper's
    notation for the diagram.
    """

    name: str
    shape: Callable[[Config, Shape], Shape]
    weights: Callable[[Config, Shape], tuple[int, int]] = lambda config, shape: (0, 0)
    macs: Callable[[Config, Shape, Shape], int | None] = lambda config, shape, out: 0
    style: str | None = None
    label: Callable[[Config], str] = lambda config: ""
    module: str = "keras.layers"

    def keras_class(self):
        """The Keras layer class (imports Keras, or vggspec.layers for our own)."""
        import importlib

        return getattr(importlib.import_module(self.module), self.name)


def shrink(size: int | None, window: int, stride: int) -> int | None:
    """A spatial size after a window slides over it without padding (None stays None)."""
    return None if size is None else (size - window) // stride + 1


def product(values) -> int:
    result = 1
    for value in values:
        result *= value
    return result


def _area(shape: Shape, per_pixel: int) -> int | None:
    height, width = shape[0], shape[1]
    return None if height is None or width is None else height * width * per_pixel


def _same(config: Config, shape: Shape) -> Shape:
    return shape


def _conv_shape(config: Config, shape: Shape) -> Shape:
    height, width = shape[0], shape[1]
    if config["padding"] == "valid":
        kernel = config["kernel_size"][0]
        height, width = shrink(height, kernel, 1), shrink(width, kernel, 1)
    return (height, width, config["filters"])


def _conv_weights(config: Config, shape: Shape) -> tuple[int, int]:
    kernel = config["kernel_size"][0]
    return kernel * kernel * shape[2] * config["filters"] + config["filters"], 0


def _conv_macs(config: Config, shape: Shape, out: Shape) -> int | None:
    kernel = config["kernel_size"][0]
    return _area(out, kernel * kernel * shape[2] * config["filters"])


def _pool_shape(config: Config, shape: Shape) -> Shape:
    size, stride = config["pool_size"][0], config["strides"][0]
    return (shrink(shape[0], size, stride), shrink(shape[1], size, stride), shape[2])


def _dense_macs(config: Config, shape: Shape, out: Shape) -> int:
    return shape[0] * config["units"]


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("InputLayer", lambda config, shape: tuple(config["shape"]), style="input",
         label=lambda config: "input " + "×".join("?" if s is None else str(s)
                                                   for s in config["shape"])),
    Kind("Conv2D", _conv_shape, _conv_weights, _conv_macs, style="conv",
         label=lambda config: f"conv{config['kernel_size'][0]}-{config['filters']}"),
    # gamma and beta are learned; the moving mean and variance are not (torchvision
    # counts only the first two as parameters; Keras counts all four).
    Kind("BatchNormalization", _same, lambda config, shape: (2 * shape[-1], 2 * shape[-1]),
         style="bn", label=lambda config: "BN"),
    Kind("Activation", _same),
    Kind("LocalResponseNormalization", _same, style="lrn", label=lambda config: "LRN",
         module="vggspec.layers"),
    Kind("MaxPooling2D", _pool_shape, style="pool", label=lambda config: "maxpool"),
    Kind("AveragePooling2D", _pool_shape, style="pool", label=lambda config: "avgpool"),
    Kind("AdaptiveAveragePooling2D",
         lambda config, shape: (*config["output_size"], shape[2]), style="pool",
         label=lambda config: "adaptive avgpool {}x{}".format(*config["output_size"])),
    Kind("GlobalAveragePooling2D", lambda config, shape: (shape[2],), style="global",
         label=lambda config: "global avgpool"),
    Kind("GlobalMaxPooling2D", lambda config, shape: (shape[2],), style="global",
         label=lambda config: "global maxpool"),
    Kind("Flatten", lambda config, shape: (product(shape),)),
    Kind("Dense", lambda config, shape: (config["units"],),
         lambda config, shape: (shape[0] * config["units"] + config["units"], 0),
         _dense_macs, style="fc", label=lambda config: f"FC-{config['units']}"),
    Kind("Dropout", _same),
)}


def kind_of(name: str) -> Kind:
    """The registry entry for a Keras class name; ValueError for one vggspec lacks."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"no layer kind '{name}' in vggspec.kinds.KINDS; add it there "
                         f"(planner, builder and diagram all read it)") from None


def activation_label(name: str) -> str:
    """How the diagram names an output activation: soft-max, sigmoid, ..."""
    return "soft-max" if name == "softmax" else name
