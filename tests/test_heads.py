"""The heads and norms torchvision and keras-hub use: a classifier after global pooling,
an adaptive average pool before the dense head, and batch-norm settings. Each is
planned, built and drawn, and checked against Keras' own counts and a reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

import vggspec
from vggspec.diagram import diagram_boxes

BASE = "name: h\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max], [16, max]]\n"


def spec(head: str, base: str = BASE, **extra) -> vggspec.Spec:
    return vggspec.spec_from_text(base + f"head: {head}\n" + "".join(
        f"{key}: {value}\n" for key, value in extra.items()))


def names(text_spec) -> list[str]:
    return [layer.name for layer in vggspec.plan(text_spec).layers]


def test_a_classifier_after_global_pooling():
    plain = spec("{type: global_avg}")
    assert names(plain)[-2:] == ["block2_pool", "global_average_pooling2d"]
    classifier = spec("{type: global_avg, classes: 5, units: [12], dropout: 0.5}")
    assert names(classifier)[-4:] == ["global_average_pooling2d", "fc1", "fc1_dropout",
                                      "predictions"]
    transfer = spec("{type: global_max, classes: 5, dropout: 0.2}")
    assert names(transfer)[-3:] == ["global_max_pooling2d", "head_dropout", "predictions"]
    p = vggspec.plan(classifier)
    assert p.layer("fc1").params == 16 * 12 + 12
    assert p.layer("predictions").params == 12 * 5 + 5
    assert p.layer("predictions").output_shape == (5,)


def test_a_global_head_needs_classes_for_a_classifier():
    with pytest.raises(vggspec.SpecError) as caught:
        spec("{type: global_avg, units: [12]}")
    assert str(caught.value).splitlines() == [
        "<text>:4:26: $.head.units: needs 'classes' too: with a global pooling head, "
        "units, dropout and activation describe a classifier",
        "<text>: note: the checks that need the layers (input size, taps) did not run: "
        "$.head has problems"]


def test_adaptive_pool_lets_a_dense_head_take_any_size():
    open_size = "name: a\ninput: {shape: [null, null, 3]}\nblocks: [[8, max], [16, max]]\n"
    with pytest.raises(vggspec.SpecError, match="a dense head needs a fixed input size"):
        spec("{type: dense, units: [12], classes: 3}", base=open_size)
    pooled = spec("{type: dense, adaptive_pool: [3, 3], units: [12], classes: 3}",
                  base=open_size)
    p = vggspec.plan(pooled)
    assert [layer.name for layer in p.layers][-4:] == ["adaptive_pool", "flatten", "fc1",
                                                       "predictions"]
    assert p.layer("adaptive_pool").output_shape == (3, 3, 16)
    assert p.layer("fc1").params == 3 * 3 * 16 * 12 + 12
    model = vggspec.build_model(pooled)
    for height, width in ((32, 32), (45, 61)):
        assert tuple(model(np.zeros((1, height, width, 3), "float32")).shape) == (1, 3)
    boxes = [box.label for box in diagram_boxes(p)]
    assert "adaptive avgpool 3x3" in boxes


def torch_adaptive_average(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """PyTorch's AdaptiveAvgPool2d, written from its definition: output cell i averages
    rows floor(i*H/out) .. ceil((i+1)*H/out) - 1 (channels last here)."""
    height, width = x.shape[1:3]
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        top, bottom = (i * height) // out_h, math.ceil((i + 1) * height / out_h)
        for j in range(out_w):
            left, right = (j * width) // out_w, math.ceil((j + 1) * width / out_w)
            out[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("size", [(7, 7), (10, 13), (3, 5)])
def test_the_adaptive_pool_matches_torchvisions_definition(size):
    import keras

    layer = keras.layers.AdaptiveAveragePooling2D(output_size=(7, 7))
    x = np.random.default_rng(0).normal(size=(2, *size, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(x)), torch_adaptive_average(x, 7, 7),
                               rtol=1e-5, atol=1e-6)


def test_batch_norm_settings_cascade_and_reach_keras():
    text = ("name: b\ninput: {shape: [16, 16, 3]}\n"
            "defaults: {batch_norm: {epsilon: 1.0e-5, momentum: 0.9}}\n"
            "blocks:\n"
            "  - [4, max]\n"                                          # from defaults
            "  - {convs: [4, {filters: 4, batch_norm: false}], batch_norm: true}\n"
            "  - {convs: [4], batch_norm: {momentum: 0.5}}\n"
            "head: {type: none}\n")
    s = vggspec.spec_from_text(text)
    settings = [c.batch_norm for b in s.blocks for c in b.convs]
    torchvision = vggspec.BatchNorm(epsilon=1e-5, momentum=0.9)
    assert settings == [torchvision, torchvision, None,
                        vggspec.BatchNorm(epsilon=1e-5, momentum=0.5)]
    model = vggspec.build_model(s)
    layer = model.get_layer("block1_conv1_bn")
    assert (layer.epsilon, layer.momentum) == (1e-5, 0.9)
    assert model.get_layer("block3_conv1_bn").momentum == 0.5
    p = vggspec.plan(s)
    # Keras counts the moving statistics; torchvision (and "trainable") does not.
    assert p.params == model.count_params()
    assert p.trainable == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert p.non_trainable == 2 * 4 * 3


def test_batch_norm_true_alone_is_keras_default():
    s = spec("{type: none}", defaults="{batch_norm: true}")
    assert s.blocks[0].convs[0].batch_norm == vggspec.BatchNorm(epsilon=1e-3, momentum=0.99)


def test_keras_counts_equal_the_plan_for_every_head():
    for head in ("{type: global_avg, classes: 5, units: [12, 6], dropout: 0.5}",
                 "{type: global_max, classes: 3}",
                 "{type: dense, units: [], classes: 4, dropout: 0.1}",
                 "{type: dense, adaptive_pool: [2, 2], units: [8], classes: 4}"):
        s = spec(head)
        model = vggspec.build_model(s)
        p = vggspec.plan(s)
        assert [layer.name for layer in model.layers] == [layer.name for layer in p.layers]
        assert model.count_params() == p.params, head
        assert tuple(model.output.shape[1:]) == p.layers[-1].output_shape


# torchvision's VGG, as data (torchvision.models.vgg.cfgs): numbers are convs, M a pool.
TORCHVISION_CFGS = {
    "vgg11_bn": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13_bn": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16_bn": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M"],
    "vgg19_bn": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512,
                 "M", 512, 512, 512, 512, "M"],
}
# torchvision's documented parameter counts (its weights tables, num_params).
TORCHVISION_PARAMS = {"vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736,
                      "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248}


def torchvision_layers(cfg: list) -> list[tuple[str, tuple, int]]:
    """(module kind, output shape channels-last, learned parameters) for each module of
    torchvision's vgg*_bn at 224x224: features, avgpool, flatten, classifier."""
    size, channels, out = 224, 3, []
    for item in cfg:
        if item == "M":
            size //= 2
            out.append(("MaxPool2d", (size, size, channels), 0))
            continue
        out.append(("Conv2d", (size, size, item), 3 * 3 * channels * item + item))
        out.append(("BatchNorm2d", (size, size, item), 2 * item))
        out.append(("ReLU", (size, size, item), 0))
        channels = item
    out.append(("AdaptiveAvgPool2d", (7, 7, channels), 0))
    out.append(("Flatten", (7 * 7 * channels,), 0))
    width = 7 * 7 * channels
    for units in (4096, 4096):
        out += [("Linear", (units,), width * units + units), ("ReLU", (units,), 0),
                ("Dropout", (units,), 0)]
        width = units
    out.append(("Linear", (1000,), width * 1000 + 1000))
    return out


KERAS_FOR = {"Conv2d": "Conv2D", "BatchNorm2d": "BatchNormalization", "ReLU": "Activation",
             "MaxPool2d": "MaxPooling2D", "AdaptiveAvgPool2d": "AdaptiveAveragePooling2D",
             "Flatten": "Flatten", "Linear": "Dense", "Dropout": "Dropout"}


@pytest.mark.parametrize("name", sorted(TORCHVISION_CFGS))
def test_the_bn_specs_are_torchvisions_architectures(name):
    from conftest import ROOT

    p = vggspec.plan(ROOT / "archs" / f"{name}.yaml")
    reference = torchvision_layers(TORCHVISION_CFGS[name])
    # The head's ReLUs are fused into fc1 and fc2, as keras.applications does.
    reference = [row for index, row in enumerate(reference)
                 if not (row[0] == "ReLU" and reference[index - 1][0] == "Linear")]
    ours = [(layer.kind, layer.output_shape, layer.trainable) for layer in p.layers[1:]]
    assert ours == [(KERAS_FOR[kind], shape, params) for kind, shape, params in reference]
    assert p.trainable == TORCHVISION_PARAMS[name]
    norms = [layer.config for layer in p.layers if layer.kind == "BatchNormalization"]
    assert {(c["epsilon"], c["momentum"]) for c in norms} == {(1e-5, 0.9)}
    dropouts = [layer.config["rate"] for layer in p.layers if layer.kind == "Dropout"]
    assert dropouts == [0.5, 0.5]


def test_a_partial_batch_norm_mapping_takes_the_rest_from_above():
    text = ("name: b\ninput: {shape: [16, 16, 3]}\n"
            "defaults: {batch_norm: {epsilon: 1.0e-5}}\n"
            "blocks:\n"
            "  - {convs: [4, {filters: 4, batch_norm: {momentum: 0.9}},"
            " {filters: 4, batch_norm: true}], batch_norm: false}\n"
            "head: {type: none}\n")
    assert [c.batch_norm for c in vggspec.spec_from_text(text).blocks[0].convs] == [
        None, vggspec.BatchNorm(epsilon=1e-5, momentum=0.9),
        vggspec.BatchNorm(epsilon=1e-5, momentum=0.99)]


def test_a_misplaced_pool_is_reported_beside_an_unknown_key():
    text = ("name: x\ninput: {shape: [32, 32, 3]}\n"
            "blocks: [[{filters: 8, kernal: 3}, avg, 16]]\nhead: {type: none}\n")
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.spec_from_text(text)
    assert [issue.path for issue in caught.value.issues] == [
        "$.blocks[0][0].kernal", "$.blocks[0][1]"]
    assert caught.value.skipped == "$.blocks has problems"


def test_null_removes_only_at_the_top_level():
    assert vggspec.spec_from_text("extends: vgg16_cifar\ntaps: null\n").taps == tuple(
        f"block{i}" for i in range(1, 6))
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.spec_from_text("extends: vgg16_bn\nhead: {dropout: null}\n")
    assert str(caught.value).splitlines()[0] == (
        "<text>:2:17: $.head.dropout: must be a number, got null; null removes a key only "
        "at the top level")
