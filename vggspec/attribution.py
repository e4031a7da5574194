"""Class activation maps: where in the image the evidence for a class lies.

    model + prepared image --grad_cam--> heatmap at a conv layer's resolution

Grad-CAM (Selvaraju et al., 2017): with A the conv layer's output (h, w, K) and y the
class's score before the final soft-max, each channel k is weighted by the mean over
positions of dy/dA_k, and the map is ReLU(sum_k weight_k * A_k). The gradient is one
vector-Jacobian product on whichever Keras backend runs (vggspec.backends.compiled_vjp).
"""

from __future__ import annotations

import numpy as np

from .errors import UsageError, did_you_mean, printable


def layer_kinds(model_or_plan) -> list[tuple[str, str]]:
    """(name, kind) of each layer of a Keras model or a Plan (no TensorFlow for a plan);
    the kind is the Keras class name, Conv2D for a convolution."""
    if hasattr(model_or_plan, "spec"):
        return [(layer.name, layer.kind) for layer in model_or_plan.layers]
    return [(layer.name, type(layer).__name__) for layer in model_or_plan.layers]


def check_conv_layer(model_or_plan, name: str, option: str = "--layer") -> str:
    """``name`` if it is one of the convolution layers of a model or plan; else
    UsageError pointing at the likely one: for a pooling or dense layer, the convolution
    before it (block5_pool: block5_conv3); for a name the network lacks, the closest
    spelling. The maps of other layers are not what Grad-CAM or filter pictures are about.

    >>> check_conv_layer(plan("archs/vgg16.yaml"), "block5_conv3")
    'block5_conv3'
    """
    layers = layer_kinds(model_or_plan)
    convs = [layer for layer, kind in layers if kind == "Conv2D"]
    if name in convs:
        return name
    owner = getattr(getattr(model_or_plan, "spec", model_or_plan), "name", "the model")
    if not convs:
        raise UsageError(f"{owner} has no convolution layer")
    count = f"{len(convs)} convolution{'s' * (len(convs) != 1)}"
    span = (repr(convs[0]) if len(convs) == 1
            else f"{convs[0]!r} and {convs[1]!r}" if len(convs) == 2
            else f"{convs[0]!r} to {convs[-1]!r}")
    names = [layer for layer, _ in layers]
    if name in names:
        before = [layer for layer in names[:names.index(name)] if layer in convs]
        hint = (f"the convolution before it is {before[-1]!r}" if before
                else f"the first convolution is {convs[0]!r}")
        raise UsageError(f"{option} {printable(repr(name))} is not a convolution layer; "
                         f"{hint} ({count}: {span})")
    raise UsageError(f"{option} {printable(repr(name))} is not a layer of {owner} ({count}: "
                     f"{span}){did_you_mean(name, convs)}")


def unit_end(model, conv: str) -> str:
    """The last layer of a convolution's unit: the conv itself in a plain VGG (its ReLU is
    fused), or its batch norm and activation after it (``block1_conv1_bn``,
    ``block1_conv1_relu``) in a batch-norm spec. What a plain VGG's conv outputs is what
    this layer outputs, so Grad-CAM and filter pictures mean the same in both.

    >>> unit_end(build_model("archs/vgg11_bn.yaml"), "block1_conv1")
    'block1_conv1_relu'
    """
    names = [layer.name for layer in model.layers]
    end = names.index(conv)
    while end + 1 < len(names) and names[end + 1].startswith(f"{conv}_"):
        end += 1
    return names[end]


class GradCam:
    """Grad-CAM for one model and conv layer, compiled once for many images.

    ``layer`` defaults to the last convolution (block5_conv3 in VGG16). Calling it with
    a batch of prepared inputs (N, H, W, C) and one class index per image (None: each
    image's top class) returns (maps (N, h, w) float32, class indices, class scores).
    Raises UsageError for a layer that is not a convolution, or a model whose last layer
    is not a classifier.

    >>> model = build_model(vggspec.spec_from_text("{name: t, input: {shape: [16, 16, 3]}, "
    ...     "blocks: [[4, max]], head: {type: global_avg, classes: 2}}"))
    >>> maps, classes, scores = GradCam(model)(np.ones((3, 16, 16, 3)))
    >>> maps.shape, classes.shape
    ((3, 16, 16), (3,))
    """

    def __init__(self, model, layer: str | None = None):
        from .backends import compiled_vjp, quiet_keras
        from .builder import layer_chain

        keras = quiet_keras()
        convs = [name for name, kind in layer_kinds(model) if kind == "Conv2D"]
        if not convs:
            raise UsageError(f"{model.name} has no convolution layer")
        self.layer = check_conv_layer(model, layer or convs[-1], "--cam-layer")
        # A batch-norm spec's conv is linear: take the map after its batch norm and ReLU.
        self._end = unit_end(model, self.layer)
        last = model.layers[-1]
        if not isinstance(last, keras.layers.Dense):
            raise UsageError(f"{model.name} ends in {last.name}, not a classifier: Grad-CAM "
                             f"needs class scores")
        self.model = model
        self._head = compiled_vjp(layer_chain(model, self._end, last.name, logits=True))
        self._runs: dict[tuple, object] = {}

    def _features(self, shape: tuple):
        """The compiled call from the input to the layer, for inputs of this shape (a
        spec with an open input size meets several)."""
        if shape not in self._runs:
            if len(self._runs) >= 8:  # an open input size meets many: keep the last few
                self._runs.pop(next(iter(self._runs)))
            from .backends import compiled_call, quiet_keras
            from .builder import layer_chain

            chain = layer_chain(self.model, None, self._end, input_shape=shape)
            self._runs[shape] = compiled_call(quiet_keras().Model(chain.input,
                                                                  {"map": chain.output}))
        return self._runs[shape]

    def __call__(self, batch: np.ndarray, classes=None):
        batch = np.asarray(batch, dtype=np.float32)
        activations = self._features(tuple(batch.shape[1:]))(batch)["map"]
        scores, _ = self._head(activations, np.zeros((len(batch), self.classes), np.float32))
        if classes is None:
            classes = scores.argmax(axis=1)
        classes = np.asarray(classes, dtype=np.int64).reshape(len(batch))
        if ((classes < 0) | (classes >= self.classes)).any():
            raise UsageError(f"class index must be from 0 to {self.classes - 1}, got "
                             f"{classes.tolist()}")
        chosen = np.zeros_like(scores)
        chosen[np.arange(len(batch)), classes] = 1.0
        _, gradients = self._head(activations, chosen)
        weights = gradients.mean(axis=(1, 2))                 # (N, K)
        maps = np.maximum(np.einsum("nhwk,nk->nhw", activations, weights), 0)
        return maps.astype(np.float32), classes, scores[np.arange(len(batch)), classes]

    @property
    def classes(self) -> int:
        return int(self.model.output.shape[-1])


def grad_cam(model, image: np.ndarray, class_index: int | None = None,
             layer: str | None = None) -> np.ndarray:
    """The Grad-CAM map of one prepared input (H, W, C), as the model takes it (after
    preprocessing), for ``class_index`` (None: the top class) at ``layer`` (None: the
    last convolution): an (h, w) float32 array at that layer's resolution, not
    normalised. For many images, make one GradCam and call it per batch.

    >>> model = build_model(vggspec.spec_from_text("{name: t, input: {shape: [32, 32, 3]}, "
    ...     "blocks: [[4, max], [8, max]], head: {type: global_avg, classes: 2}}"))
    >>> image = vggspec.preprocess(vggspec.load_image("extra.jpg", 3, (32, 32)))
    >>> grad_cam(model, image, class_index=1).shape
    (16, 16)
    """
    maps, _, _ = GradCam(model, layer)(np.asarray(image)[None],
                                       None if class_index is None else [class_index])
    return maps[0]


def upsample(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """A map scaled to the image's size (bilinear, as Grad-CAM's figures do), 0..1 by
    its maximum (all zeros stays zeros)."""
    from PIL import Image

    heat = np.asarray(heat, dtype=np.float32)
    top = float(heat.max())
    scaled = heat / top if top > 0 else np.zeros_like(heat)
    picture = Image.fromarray(scaled, mode="F").resize((width, height),
                                                        Image.Resampling.BILINEAR)
    return np.clip(np.asarray(picture), 0, 1)
