"""The planner: every layer a spec will build, with its name, shape, parameters and MACs.

    Spec --plan--> per-layer table

Plain Python, no TensorFlow. The builder makes exactly these layers, in this order,
from each row's Keras class name and constructor arguments, so the two cannot drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import Issue, SpecError, quote
from .kinds import kind_of, product
from .names import GLOBAL_POOL_NAMES, INPUT_NAME, block_tap, layer_name, resolve_taps, \
    tap_targets
from .schema_words import Hints
from .spec import Spec, check_spec
from .units import GIB, MIB, format_bytes, sum_or_none  # noqa: F401  (re-exported)

DEFAULT_MAX_WEIGHT_BYTES = 4 * GIB
# Activations grow with the input, and an open input size takes an image of any size:
# `features` refuses an image whose float32 activations (up to the last tap) need more.
DEFAULT_MAX_ACTIVATION_BYTES = 4 * GIB
BYTES_PER_FLOAT32 = 4
POOL_CLASSES = {"max": "MaxPooling2D", "avg": "AveragePooling2D"}
GLOBAL_POOL_CLASSES = {"global_avg": "GlobalAveragePooling2D",
                       "global_max": "GlobalMaxPooling2D"}


@dataclass(frozen=True)
class Layer:
    """One layer to build: ``kind`` is its Keras class name and ``config`` its arguments.

    ``block`` is 1..N inside conv block N and None for the input and the head;
    ``params`` counts every weight, as Keras' ``count_params`` does, of which
    ``non_trainable`` are not learned (batch norm's moving statistics); ``macs`` counts
    multiply-accumulates of convs and dense layers (None for an open input size);
    ``path`` is the spec path that asked for the layer.
    """

    name: str
    kind: str
    output_shape: tuple[int | None, ...]
    params: int = 0
    macs: int | None = 0
    block: int | None = None
    path: str = ""
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    non_trainable: int = 0

    @property
    def trainable(self) -> int:
        """Learned weights: what torchvision counts as parameters."""
        return self.params - self.non_trainable


@dataclass(frozen=True)
class Plan:
    """All layers of a spec, with totals. ``str(plan)`` is the summary table."""

    spec: Any
    layers: tuple[Layer, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable(self) -> int:
        return sum(layer.trainable for layer in self.layers)

    @property
    def non_trainable(self) -> int:
        return sum(layer.non_trainable for layer in self.layers)

    @property
    def macs(self) -> int | None:
        return sum_or_none(layer.macs for layer in self.layers)

    @property
    def weight_bytes(self) -> int:
        return self.params * BYTES_PER_FLOAT32

    @property
    def activation_bytes(self) -> int | None:
        """float32 bytes of every layer's output for one image (None for open sizes)."""
        sizes = []
        for layer in self.layers:
            if None in layer.output_shape:
                return None
            sizes.append(product(layer.output_shape))
        return sum(sizes) * BYTES_PER_FLOAT32

    def block_layers(self) -> dict[int, list[Layer]]:
        """The layers of each conv block, by block number (1..N)."""
        blocks: dict[int, list[Layer]] = {i: [] for i in range(1, len(self.spec.blocks) + 1)}
        for layer in self.layers:
            if layer.block is not None:
                blocks[layer.block].append(layer)
        return blocks

    def block_totals(self) -> list[tuple[str, int, int | None]]:
        """(block tap name, parameters, MACs) for each conv block."""
        return [(block_tap(index), sum(r.params for r in rows),
                 sum_or_none(r.macs for r in rows))
                for index, rows in self.block_layers().items()]

    def tap_layers(self, taps: Iterable[str] | None = None) -> dict[str, str]:
        """Tap name -> the layer whose output it is, for ``taps`` or the spec's taps.
        Raises UsageError for a tap with no layer."""
        return resolve_taps((layer.name for layer in self.layers),
                            self.spec.taps if taps is None else taps, self.spec.source)

    def up_to(self, layer_names: Iterable[str]) -> Plan:
        """This plan cut after the last of ``layer_names``: all a feature model needs, so
        features of the conv blocks never allocate the dense head."""
        wanted = set(layer_names)
        last = max(i for i, layer in enumerate(self.layers) if layer.name in wanted)
        return Plan(self.spec, self.layers[:last + 1])

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def check_weight_limit(self, limit_bytes: int | None = DEFAULT_MAX_WEIGHT_BYTES) -> None:
        """Raise SpecError if float32 weights would need more than ``limit_bytes``."""
        if limit_bytes is None or self.weight_bytes <= limit_bytes:
            return
        largest = max(self.layers, key=lambda layer: layer.params)
        raise SpecError([self.spec.issue(largest.path, (
            f"the weights need {format_bytes(self.weight_bytes)} (float32, {self.params:,} "
            f"parameters), over the limit of {format_bytes(limit_bytes)}; the largest layer is "
            f"{largest.name} with {largest.params:,} parameters "
            f"({format_bytes(largest.params * BYTES_PER_FLOAT32)}); raise the limit with "
            f"--max-weight-gib if this is meant"))])

    def __str__(self) -> str:
        return format_table(self)

    def as_dict(self) -> dict:
        """The plan as plain data (tuples as lists, None as None), JSON-ready: what
        ``vggspec summary --json`` prints. A stable format: within format version 1,
        fields are only ever added, never renamed or removed.

        ``{"format": "vggspec.plan/1", "name", "input_shape", "layers": [{"name",
        "kind", "config", "output_shape", "params", "trainable", "non_trainable",
        "macs", "block", "path"}, ...], "totals": {"params", "trainable",
        "non_trainable", "macs", "weight_bytes", "activation_bytes"}}``; ``kind`` is the
        Keras class name and ``config`` its arguments; ``macs`` and ``activation_bytes``
        are None for an open input size; ``block`` is None outside the conv blocks.

        >>> plan("archs/vgg16.yaml").as_dict()["totals"]["params"]
        138357544
        """
        from .tables import plan_dict

        return plan_dict(self)

    def to_json(self) -> str:
        """``as_dict()`` as JSON text, one line per layer."""
        from .tables import plan_json

        return plan_json(self)

    def __repr__(self) -> str:
        from .tables import plan_repr

        return plan_repr(self)

    def _repr_html_(self) -> str:
        from .tables import plan_html

        return plan_html(self)


def plan(spec_or_path: Any, max_weight_bytes: int | None = DEFAULT_MAX_WEIGHT_BYTES) -> Plan:
    """Plan every layer of a spec (a Spec or a path to one) without building anything.

    This is the one function that runs every check: the spec's fields (for a path) and
    the checks that need the layers (an input too small for a window, taps that name no
    layer), all reported in one SpecError. It also raises SpecError when the weights
    exceed ``max_weight_bytes`` (None for no limit), InputError for an unreadable file.

    >>> p = plan("archs/vgg16.yaml")
    >>> p.params, p.layer("block5_pool").output_shape
    (138357544, (7, 7, 512))
    """
    if isinstance(spec_or_path, (str, os.PathLike)):
        spec, issues, skipped = check_spec(spec_or_path)
    else:
        spec, issues, skipped = spec_or_path, [], None
    layers: list[Layer] = []
    if spec is not None:
        layers, walk_issues = plan_layers(spec)
        issues = issues + walk_issues
    if issues:
        raise SpecError(issues, skipped)
    result = Plan(spec, tuple(layers))
    result.check_weight_limit(max_weight_bytes)
    return result


def plan_layers(spec: Spec) -> tuple[list[Layer], list[Issue]]:
    """Walk a spec into layers, with the problems only the walk can find. Stops at the
    first layer whose input is too small, returning the layers so far and an Issue that
    names the smallest input that works (taps are then not checked: the layers past
    that point are unknown); otherwise checks that every tap names a layer."""
    layers: list[Layer] = []

    def add(name: str, kind: str, path: str, block: int | None = None, **config) -> None:
        entry = kind_of(kind)
        before = layers[-1].output_shape if layers else ()
        shape = entry.shape(config, before)
        trainable, frozen = entry.weights(config, before)
        layers.append(Layer(name, kind, shape, trainable + frozen,
                            entry.macs(config, before, shape), block, path, config, frozen))

    def too_small(window: int, path: str, name: str, what: str) -> list[Issue]:
        height, width = layers[-1].output_shape[:2]
        if any(size is not None and size < window for size in (height, width)):
            return [_shrink_issue(spec, path, name, height, width, what)]
        return []

    add(INPUT_NAME, "InputLayer", "$.input.shape", shape=tuple(spec.input_shape))
    for b, block in enumerate(spec.blocks, start=1):
        for c, conv in enumerate(block.convs, start=1):
            name = layer_name(b, c)
            if conv.padding == "valid" and (problem := too_small(
                    conv.kernel, conv.path, name, f"{conv.kernel}x{conv.kernel} conv")):
                return layers, problem
            # ReLU is fused into the conv, as in keras.applications, unless batch norm
            # must sit between them.
            activation = "linear" if conv.batch_norm else conv.activation
            add(name, "Conv2D", conv.path, b, filters=conv.filters,
                kernel_size=(conv.kernel, conv.kernel), padding=conv.padding,
                activation=activation)
            if conv.batch_norm:
                add(layer_name(b, c, suffix="bn"), "BatchNormalization", conv.path, b,
                    epsilon=conv.batch_norm.epsilon, momentum=conv.batch_norm.momentum)
                if conv.activation != "linear":
                    add(layer_name(b, c, suffix=conv.activation), "Activation", conv.path, b,
                        activation=conv.activation)
            if conv.lrn:
                lrn = spec.lrn
                add(layer_name(b, c, suffix="lrn"), "LocalResponseNormalization", conv.path,
                    b, depth_radius=lrn.size // 2, bias=lrn.bias, alpha=lrn.alpha,
                    beta=lrn.beta)
        pool = block.pool
        if pool.type != "none":
            name = layer_name(b, pool=True)
            if problem := too_small(pool.size, pool.path, name,
                                    f"{pool.size}x{pool.size} {pool.type} pool"):
                return layers, problem
            add(name, POOL_CLASSES[pool.type], pool.path, b,
                pool_size=(pool.size, pool.size), strides=(pool.stride, pool.stride))

    head = spec.head
    if head.type == "dense":
        if head.adaptive_pool:
            add("adaptive_pool", "AdaptiveAveragePooling2D", f"{head.path}.adaptive_pool",
                output_size=tuple(head.adaptive_pool))
        add("flatten", "Flatten", head.path)
    elif head.type in GLOBAL_POOL_CLASSES:
        add(GLOBAL_POOL_NAMES[head.type], GLOBAL_POOL_CLASSES[head.type], head.path)
    if head.classes is not None and head.type != "none":
        for index, units in enumerate(head.units, start=1):
            add(layer_name(fc=index), "Dense", f"{head.path}.units[{index - 1}]",
                units=units, activation="relu")
            if head.dropout > 0:
                add(layer_name(fc=index, suffix="dropout"), "Dropout", f"{head.path}.dropout",
                    rate=head.dropout)
        if head.dropout > 0 and not head.units:
            add("head_dropout", "Dropout", f"{head.path}.dropout", rate=head.dropout)
        add("predictions", "Dense", f"{head.path}.classes", units=head.classes,
            activation=head.activation)
    return layers, _tap_issues(spec, layers)


def _tap_issues(spec: Spec, layers: list[Layer]) -> list[Issue]:
    targets = tap_targets(layer.name for layer in layers)
    names, hint, issues = sorted(targets), Hints(), []
    for index, tap in enumerate(spec.taps):
        if tap not in targets:
            issues.append(spec.issue(f"$.taps[{index}]", f"no layer or block named "
                                                         f"{quote(tap)}{hint(tap, names)}"))
    return issues


def _windows(spec: Any) -> list[tuple[int, int]]:
    """(window, stride) of every layer that can shrink the image, in order."""
    steps = []
    for block in spec.blocks:
        steps += [(conv.kernel, 1) for conv in block.convs if conv.padding == "valid"]
        if block.pool.type != "none":
            steps.append((block.pool.size, block.pool.stride))
    return steps


def smallest_input(spec: Any) -> int:
    """The smallest height (or width) that stays at least 1 pixel through every layer.

    Worked backwards from one pixel: a layer of window w and stride s that must leave n
    pixels needs (n - 1) * s + w, so the answer costs one step per layer, however large.
    """
    size = 1
    for window, stride in reversed(_windows(spec)):
        size = (size - 1) * stride + window
    return size


def _shrink_issue(spec, path: str, name: str, height, width, what: str) -> Issue:
    smallest = smallest_input(spec)
    given = "x".join("any" if s is None else str(s) for s in spec.input_shape[:2])
    here = "x".join("any" if s is None else str(s) for s in (height, width))
    return spec.issue(path, (f"the input shrinks to {here} before {name}, smaller than its "
                             f"{what}; the smallest input that works is "
                             f"{smallest}x{smallest}, got {given}"))


def format_table(p: Plan) -> str:
    """The summary table: one row per layer (parameters split into trainable and
    non-trainable), a subtotal after each block, then totals (see vggspec.tables)."""
    from .tables import format_summary

    return format_summary(p)
