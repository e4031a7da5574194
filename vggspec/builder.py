"""The builder: a flat Keras 3 functional model from a spec, one layer per planned row.

    Spec --plan--> layers --build--> keras.Model --feature_model--> {tap: tensor}

It reads no files (weights are loaded by vggspec.weights) and imports Keras only when
called, so `import vggspec` stays light.
"""

from __future__ import annotations

import os
from typing import Any

from .kinds import kind_of
from .names import INPUT_NAME, resolve_taps
from .plan import DEFAULT_MAX_WEIGHT_BYTES, Plan, plan

# The layers whose layout keras.json's image_data_format would otherwise choose.
CHANNELS_LAST = {"Conv2D", "MaxPooling2D", "AveragePooling2D", "AdaptiveAveragePooling2D",
                 "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten"}


def as_plan(spec_or_path: Any, max_weight_bytes: int | None) -> Plan:
    """A Plan from a Plan, a Spec or a path, with the weight limit checked."""
    if isinstance(spec_or_path, Plan):
        spec_or_path.check_weight_limit(max_weight_bytes)
        return spec_or_path
    return plan(spec_or_path, max_weight_bytes)


def build_model(spec_or_path: Any, *, weights: str | os.PathLike | None = None,
                max_weight_bytes: int | None = DEFAULT_MAX_WEIGHT_BYTES,
                partial: bool = False, synchronized_batch_norm: bool = False):
    """Build the Keras model a spec describes (a Spec, a Plan or a path to a spec).

    Layer names, order, types and settings follow the planner and match
    keras.applications (VGG16 and VGG19 are identical to theirs). With ``weights``,
    loads "imagenet" or "torchvision" (the published weights for a shipped spec, by its
    name, downloaded once) or a .weights.h5, .keras or legacy Keras HDF5 file by layer
    name, all or nothing
    (``partial=True``: every layer that fits, the rest left initialised; the model's
    ``load_report`` says which). ``synchronized_batch_norm``: batch statistics gathered
    across the replicas of a tf.distribute strategy (training on several devices).
    Under a mixed-precision dtype policy the predictions layer stays float32, as
    Keras' mixed-precision guide advises for the final activation.
    Raises SpecError for an invalid spec or one over ``max_weight_bytes`` (checked
    before anything is allocated), InputError for a weights file that cannot be used.

    >>> model = build_model("archs/vgg16.yaml")
    >>> model.get_layer("block5_pool").output.shape
    (None, 7, 7, 512)
    """
    layout = as_plan(spec_or_path, max_weight_bytes)
    from .backends import quiet_keras

    keras = quiet_keras()

    first = layout.layers[0]
    x = inputs = keras.Input(shape=first.config["shape"], name=INPUT_NAME)
    mixed = keras.config.dtype_policy().name.startswith("mixed")
    for layer in layout.layers[1:]:
        config = dict(layer.config)
        if kind_of(layer.kind).keras_class().__name__ in CHANNELS_LAST:
            # A user's keras.json may say channels_first; our shapes and weights do not.
            config["data_format"] = "channels_last"
        if synchronized_batch_norm and layer.kind == "BatchNormalization":
            config["synchronized"] = True
        if mixed and layer is layout.layers[-1] and layer.kind == "Dense":
            config["dtype"] = "float32"
        x = kind_of(layer.kind).keras_class()(name=layer.name, **config)(x)
    model = keras.Model(inputs, x, name=layout.spec.name)
    if weights is not None:
        from .weights import load_weights

        model.load_report = load_weights(model, weights_file(weights, layout.spec),
                                         partial=partial)
    return model


def weights_file(weights: str | os.PathLike, spec) -> str | os.PathLike:
    """The file ``weights`` names: "imagenet" or "torchvision" are the published weights
    for the spec (by its name), fetched into Keras' cache (see vggspec.sources);
    anything else is a path."""
    from .sources import check_readable, fetch, resolve

    source = resolve(weights, spec.name, spec.head.type)
    if source is None:
        return weights
    check_readable(source)
    return fetch(source)


def feature_model(model_or_spec: Any, taps: list[str] | tuple[str, ...] | None = None, *,
                  weights: str | os.PathLike | None = None,
                  max_weight_bytes: int | None = DEFAULT_MAX_WEIGHT_BYTES):
    """A model whose output is a dict of feature maps keyed by tap name.

    ``model_or_spec`` is a Keras model (ours or keras.applications') or anything
    build_model takes; from a spec, only the layers up to the last tap are built (and
    ``weights`` loaded into them), so conv taps never allocate the dense head. ``taps``
    defaults to the spec's taps (every block: ``block1`` ... ``blockN``); any layer name
    works too, such as ``block3_conv3`` for a perceptual loss. Raises UsageError for a
    tap with no layer.

    >>> features = feature_model("archs/vgg16.yaml")
    >>> {k: v.shape for k, v in features(np.zeros((1, 224, 224, 3))).items()}["block1"]
    TensorShape([1, 112, 112, 64])
    """
    from .backends import quiet_keras

    keras = quiet_keras()

    if isinstance(model_or_spec, keras.Model):
        model = model_or_spec
    else:
        layout = as_plan(model_or_spec, max_weight_bytes)
        needed = layout.tap_layers(taps)
        taps = list(needed)
        model = build_model(layout.up_to(needed.values()), weights=weights,
                            max_weight_bytes=None)
    mapping = resolve_taps((layer.name for layer in model.layers), taps, model.name)
    outputs = {tap: model.get_layer(name).output for tap, name in mapping.items()}
    return keras.Model(model.input, outputs, name=f"{model.name}_features")


def layer_chain(model: Any, after: str | None, upto: str, *, input_shape=None,
                logits: bool = False):
    """A model of the layers of one of our chain models (every layer feeds the next, as
    build_model makes them) that follow ``after`` (None: the input) up to and including
    ``upto``, sharing their weights.

    ``input_shape`` (without the batch) defaults to what the first layer takes; a conv
    stack takes any size, so filter pictures can run at a smaller size than the spec's.
    ``logits=True`` ends in the scores before the last layer's activation: Grad-CAM's
    class score (a Dense layer), a filter's response before its fused ReLU (a Conv2D).
    Raises UsageError for a name
    that is not a layer of the model, or ``upto`` before ``after``.

    >>> model = build_model("archs/vgg16.yaml")
    >>> head = layer_chain(model, "block5_conv3", "predictions", logits=True)
    >>> head.input.shape, head.output.shape
    ((None, 14, 14, 512), (None, 1000))
    """
    from .backends import quiet_keras
    from .errors import UsageError

    keras = quiet_keras()
    names = [layer.name for layer in model.layers]
    for name in (after, upto):
        if name is not None and name not in names:
            raise UsageError(f"{model.name} has no layer named {name!r}")
    start = names.index(after) + 1 if after is not None else 1
    stop = names.index(upto)
    if stop < start:
        raise UsageError(f"{upto} comes before {after} in {model.name}")
    first = model.layers[start]
    shape = input_shape or tuple(first.input.shape[1:])
    x = inputs = keras.Input(shape=shape, name=f"{after or INPUT_NAME}_output")
    for layer in model.layers[start:stop + 1]:
        if logits and layer is model.layers[stop] and \
                layer.get_config().get("activation", "linear") != "linear":
            linear = type(layer).from_config({**layer.get_config(), "activation": "linear",
                                              "name": f"{layer.name}_logits"})
            linear.build(x.shape)
            linear.set_weights(layer.get_weights())
            layer = linear
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_{after or 'input'}_to_{upto}")
