"""The checked spec as frozen dataclasses: what the planner and builder read.

    merged tree --fields--> Spec --plan--> layers

Every default below is read from the JSON Schema (vggspec/schema), the one place
defaults are written, so the dataclasses, the schema and editors cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ._yaml import issue_at
from .errors import Issue
from .schema import (augment_defaults, batch_norm_defaults, conv_defaults, lrn_defaults,
                     pool_defaults, train_defaults)

_CONV, _BN, _LRN, _POOL = conv_defaults(), batch_norm_defaults(), lrn_defaults(), \
    pool_defaults()
_TRAIN, _AUGMENT = train_defaults(), augment_defaults()


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation after a conv: Keras' ``epsilon`` and ``momentum``
    (torchvision's BatchNorm2d is epsilon 1e-5, momentum 0.9 in Keras' terms)."""

    epsilon: float = _BN["epsilon"]
    momentum: float = _BN["momentum"]


@dataclass(frozen=True)
class Conv:
    """One convolution: ``filters`` outputs of a ``kernel`` x ``kernel`` window;
    ``batch_norm`` is None when there is none."""

    filters: int
    kernel: int = _CONV["kernel"]
    padding: str = _CONV["padding"]
    activation: str = _CONV["activation"]
    batch_norm: BatchNorm | None = None
    lrn: bool = False
    path: str = ""


@dataclass(frozen=True)
class Pool:
    """The pooling layer that ends a block; ``type`` is max, avg or none."""

    type: str = _CONV["pool"]
    size: int = _POOL["size"]
    stride: int = _POOL["size"]
    path: str = ""


@dataclass(frozen=True)
class Block:
    """A run of convs followed by one pooling layer."""

    convs: tuple[Conv, ...]
    pool: Pool
    path: str = ""


@dataclass(frozen=True)
class Lrn:
    """Local response normalisation settings (size channels, alpha, beta, bias k)."""

    size: int = _LRN["size"]
    alpha: float = _LRN["alpha"]
    beta: float = _LRN["beta"]
    bias: float = _LRN["bias"]


@dataclass(frozen=True)
class Head:
    """What follows the conv blocks. ``dense``: an optional adaptive average pool to
    ``adaptive_pool`` (height, width), flatten, hidden fc layers, predictions.
    ``global_avg`` / ``global_max``: the pooling, then, when ``classes`` is set, hidden
    fc layers and predictions. ``none``: nothing. ``classes`` is None for no predictions
    layer."""

    type: str
    units: tuple[int, ...] = ()
    dropout: float = 0.0
    classes: int | None = None
    activation: str = "softmax"
    adaptive_pool: tuple[int, int] | None = None
    path: str = "$.head"


@dataclass(frozen=True)
class Augment:
    """Random changes to training images: a left-right flip, a random resized crop
    keeping at least ``crop_scale`` of the area."""

    flip: bool = _AUGMENT["flip"]
    crop: bool = _AUGMENT["crop"]
    crop_scale: float = _AUGMENT["crop_scale"]


@dataclass(frozen=True)
class Train:
    """How ``vggspec train`` trains the network (the spec's ``train`` section, every
    default from the schema). ``preprocess`` None: chosen from the weights or the
    channels when training starts."""

    epochs: int = _TRAIN["epochs"]
    batch_size: int = _TRAIN["batch_size"]
    optimizer: str = _TRAIN["optimizer"]
    learning_rate: float = _TRAIN["learning_rate"]
    momentum: float = _TRAIN["momentum"]
    weight_decay: float = _TRAIN["weight_decay"]
    schedule: str = _TRAIN["schedule"]
    warmup_epochs: int = _TRAIN["warmup_epochs"]
    label_smoothing: float = _TRAIN["label_smoothing"]
    augment: Augment = Augment()
    val_split: float = _TRAIN["val_split"]
    seed: int = _TRAIN["seed"]
    precision: str = _TRAIN["precision"]
    resize: str = _TRAIN["resize"]
    preprocess: str | None = None

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in self.__dataclass_fields__}
        out["augment"] = {key: getattr(self.augment, key)
                          for key in self.augment.__dataclass_fields__}
        return out


@dataclass(frozen=True)
class Spec:
    """A checked spec: everything the planner and builder need, defaults applied.
    ``train`` is the spec's training settings, None when it has no ``train`` section
    (training then uses ``Train()``)."""

    name: str
    input_shape: tuple[int | None, int | None, int]
    blocks: tuple[Block, ...]
    head: Head
    taps: tuple[str, ...]
    lrn: Lrn = Lrn()
    description: str = ""
    train: Train | None = None
    source: str = "<spec>"
    nodes: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def issue(self, path: str, message: str) -> Issue:
        """An Issue at the file, line and column where ``path`` was written."""
        return issue_at(self.nodes, self.source, path, message)

    def to_dict(self) -> dict:
        """The resolved spec in the long form: what will be built, every default written."""
        blocks = []
        for block in self.blocks:
            blocks.append({
                "convs": [{"filters": c.filters, "kernel": c.kernel, "padding": c.padding,
                           "activation": c.activation,
                           "batch_norm": False if c.batch_norm is None else {
                               "epsilon": c.batch_norm.epsilon,
                               "momentum": c.batch_norm.momentum},
                           "lrn": c.lrn} for c in block.convs],
                "pool": {"type": block.pool.type, "size": block.pool.size,
                         "stride": block.pool.stride},
            })
        head: dict[str, Any] = {"type": self.head.type}
        if self.head.adaptive_pool:
            head["adaptive_pool"] = list(self.head.adaptive_pool)
        if self.head.type != "none" and (self.head.type == "dense" or self.head.classes):
            head.update(units=list(self.head.units), dropout=self.head.dropout,
                        classes=self.head.classes, activation=self.head.activation)
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update({
            "input": {"shape": list(self.input_shape)},
            "defaults": {"lrn": {"size": self.lrn.size, "alpha": self.lrn.alpha,
                                 "beta": self.lrn.beta, "bias": self.lrn.bias}},
            "blocks": blocks, "head": head, "taps": list(self.taps),
        })
        if self.train is not None:
            out["train"] = self.train.to_dict()
        return out
