"""PyTorch checkpoints (torchvision's and timm's VGG layouts) read safely and mapped onto
our layers, all or nothing. No torch and no network: the files are written with
safetensors' numpy API, the PyTorch layout by transforms written here independently of
vggspec.checkpoints, and a forward pass in PyTorch's NCHW convention, written here in
numpy, is the reference for the channel-first/channel-last conversion."""

from __future__ import annotations

import json
import math
import pickle
import re
import struct
import sys
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file as _save_file

import vggspec
from vggspec.builder import build_model
from vggspec.checkpoints import (checkpoint_format, read_checkpoint_arrays, read_state_dict,
                                 torchvision_to_keras)

BN = "defaults: {batch_norm: {epsilon: 1.0e-5, momentum: 0.9}}\n"
SMALL = ("name: small\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max], [16, 16, max]]\n" + BN
         + "head: {type: dense, adaptive_pool: [2, 2], units: [12], classes: 5, dropout: 0.5, "
           "activation: linear}\n")
# torchvision's make_layers configuration of SMALL: its features.N follow from it.
SMALL_CFG = [8, "M", 16, 16, "M"]
# The conv layers of SMALL in order, as Keras names them.
SMALL_CONVS = ["block1_conv1", "block2_conv1", "block2_conv2"]


def small_spec(head: str | None = None, blocks: str = "[[8, max], [16, 16, max]]",
               batch_norm: bool = True) -> vggspec.Spec:
    text = SMALL.replace("[[8, max], [16, 16, max]]", blocks)
    if head is not None:
        text = text[:text.index("head:")] + f"head: {head}\n"
    if not batch_norm:
        text = text.replace(BN, "")
    return vggspec.spec_from_text(text)


def randomised(model, seed: int = 0):
    """Every weight random, batch-norm variances positive, so nothing maps by luck."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for weight in layer.weights:
            low = 0.5 if weight.name == "moving_variance" else -0.5
            values.append(rng.uniform(low, 1.0, tuple(weight.shape)).astype("float32"))
        if values:
            layer.set_weights(values)
    return model


def inputs(shape, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (2, *shape)).astype("float32")


# --- the reverse transforms: Keras weights -> PyTorch's layouts, written independently --

def conv_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras (H, W, in, out) -> PyTorch (out, in, H, W)."""
    return np.einsum("hwio->oihw", kernel)


def dense_to_torch(kernel: np.ndarray, map_shape=None) -> np.ndarray:
    """Keras Dense (in, out) -> PyTorch Linear (out, in). After a flatten of a
    (H, W, C) map, PyTorch's input index is c*H*W + h*W + w, Keras' (h*W + w)*C + c."""
    if map_shape is None:
        return kernel.T.copy()
    height, width, channels = map_shape
    weight = np.zeros((kernel.shape[1], kernel.shape[0]), kernel.dtype)
    for c in range(channels):
        for h in range(height):
            for w in range(width):
                weight[:, c * height * width + h * width + w] = \
                    kernel[(h * width + w) * channels + c]
    return weight


def features_to_torch(model, cfg, convs, batch_norm: bool) -> dict[str, np.ndarray]:
    """torchvision's make_layers walked over ``cfg``: conv, [batch norm], ReLU per
    number, a max pool per 'M'; each module with weights takes the next Keras conv."""
    state, index, convs = {}, 0, iter(convs)
    for value in cfg:
        if value == "M":
            index += 1
            continue
        name = next(convs)
        kernel, bias = model.get_layer(name).get_weights()
        state[f"features.{index}.weight"] = conv_to_torch(kernel)
        state[f"features.{index}.bias"] = bias
        index += 1
        if batch_norm:
            gamma, beta, mean, variance = model.get_layer(f"{name}_bn").get_weights()
            state.update({f"features.{index}.weight": gamma, f"features.{index}.bias": beta,
                          f"features.{index}.running_mean": mean,
                          f"features.{index}.running_var": variance,
                          f"features.{index}.num_batches_tracked": np.array(7, np.int64)})
            index += 1
        index += 1  # ReLU
    return state


def torchvision_state(model, cfg=SMALL_CFG, convs=SMALL_CONVS, batch_norm=True,
                      map_shape=(2, 2, 16), hidden=("fc1",)) -> dict[str, np.ndarray]:
    state = features_to_torch(model, cfg, convs, batch_norm)
    for number, name in enumerate([*hidden, "predictions"]):
        kernel, bias = model.get_layer(name).get_weights()
        state[f"classifier.{3 * number}.weight"] = dense_to_torch(
            kernel, map_shape if number == 0 else None)
        state[f"classifier.{3 * number}.bias"] = bias
    return state


def timm_state(model, map_shape) -> dict[str, np.ndarray]:
    """timm's VGG: the same features, then ConvMlp (fc1 a conv over the whole map, fc2 a
    1x1 conv) and head.fc."""
    state = features_to_torch(model, SMALL_CFG, SMALL_CONVS, True)
    kernel, bias = model.get_layer("fc1").get_weights()
    height, width, channels = map_shape
    weight = np.zeros((kernel.shape[1], channels, height, width), "float32")
    for c in range(channels):
        for h in range(height):
            for w in range(width):
                weight[:, c, h, w] = kernel[(h * width + w) * channels + c]
    state["pre_logits.fc1.weight"], state["pre_logits.fc1.bias"] = weight, bias
    kernel, bias = model.get_layer("fc2").get_weights()
    state["pre_logits.fc2.weight"] = kernel.T[:, :, None, None].copy()
    state["pre_logits.fc2.bias"] = bias
    kernel, bias = model.get_layer("predictions").get_weights()
    state["head.fc.weight"], state["head.fc.bias"] = kernel.T.copy(), bias
    return state


def save_file(state: dict, path: str) -> None:
    """safetensors' numpy writer stores a non-contiguous array's buffer as it lies in
    memory (0.8.0 does not check), so every array is made contiguous first."""
    _save_file({key: np.ascontiguousarray(value) for key, value in state.items()}, path)


def load(model, path, **kwargs):
    arrays = read_checkpoint_arrays(path, model, **kwargs)
    for layer in model.layers:
        if layer.name in arrays:
            layer.set_weights(arrays[layer.name])
    return arrays


def assert_same_weights(model, source):
    """Every layer of ``model`` with weights holds exactly the numbers of ``source``'s."""
    layers = [layer for layer in model.layers if layer.weights]
    assert layers
    for layer in layers:
        for mine, theirs in zip(layer.get_weights(), source.get_layer(layer.name).get_weights(),
                                strict=True):
            np.testing.assert_array_equal(mine, theirs, err_msg=layer.name)


# --- round trips ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def source():
    return randomised(build_model(small_spec()))


def test_torchvision_layout_round_trips_exactly(source, tmp_path):
    path = tmp_path / "small.safetensors"
    save_file(torchvision_state(source), str(path))
    model = build_model(small_spec())
    arrays = load(model, path)
    assert sorted(arrays) == sorted(layer.name for layer in source.layers if layer.weights)
    assert all(a.dtype == np.float32 for value in arrays.values() for a in value)
    assert_same_weights(model, source)
    batch = inputs((32, 32, 3))
    np.testing.assert_allclose(model(batch, training=False).numpy(),
                               source(batch, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_the_mapping_works_from_a_plan_and_from_arrays(source):
    state = torchvision_state(source)
    from_model = torchvision_to_keras(state, source)
    from_plan = torchvision_to_keras(state, vggspec.plan(small_spec()))
    assert sorted(from_model) == sorted(from_plan)
    for name, arrays in from_model.items():
        for a, b in zip(arrays, from_plan[name]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(from_model["fc1"][0],
                                  source.get_layer("fc1").get_weights()[0])


def test_timm_layout_round_trips_exactly(tmp_path):
    spec = small_spec("{type: dense, adaptive_pool: [2, 2], units: [12, 10], classes: 5, "
                      "activation: linear}")
    original = randomised(build_model(spec), seed=3)
    path = tmp_path / "timm.safetensors"
    save_file(timm_state(original, (2, 2, 16)), str(path))
    model = build_model(spec)
    load(model, path)
    assert_same_weights(model, original)
    batch = inputs((32, 32, 3))
    np.testing.assert_allclose(model(batch).numpy(), original(batch).numpy(), rtol=1e-5,
                               atol=1e-5)


def test_content_decides_the_format_not_the_name(source, tmp_path):
    path = tmp_path / "really_safetensors.pth"
    save_file(torchvision_state(source), str(path))
    assert checkpoint_format(path) == "safetensors"
    assert read_state_dict(path)["features.0.weight"].shape == (8, 3, 3, 3)
    legacy = tmp_path / "w.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    keras_zip = tmp_path / "m.keras"
    with zipfile.ZipFile(keras_zip, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    torch_zip = tmp_path / "weights.safetensors"
    with zipfile.ZipFile(torch_zip, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}))
    assert [checkpoint_format(p) for p in (legacy, keras_zip, torch_zip)] == [None, None,
                                                                              "torch"]


# --- an independent reference: the forward pass in PyTorch's NCHW convention ---------

REFERENCE = ("name: reference\ninput: {shape: [6, 10, 3]}\nblocks: [[4, max]]\n" + BN +
             "head: {type: dense, adaptive_pool: [2, 3], units: [7, 6], classes: 5, "
             "activation: linear}\n")


def torch_conv(x, weight, bias, padding):
    """Cross-correlation as torch.nn.functional.conv2d computes it, x (N, C, H, W)."""
    out_channels, _, kh, kw = weight.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    height, width = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], out_channels, height, width))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("oc,nchw->nohw", weight[:, :, i, j],
                             x[:, :, i:i + height, j:j + width])
    return out + bias[None, :, None, None]


def torch_batch_norm(x, weight, bias, mean, var, eps=1e-5):
    shape = (1, -1, 1, 1)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) \
        * weight.reshape(shape) + bias.reshape(shape)


def torch_adaptive_average(x, out_h, out_w):
    """AdaptiveAvgPool2d: cell i averages rows floor(i*H/out) .. ceil((i+1)*H/out) - 1."""
    height, width = x.shape[2:]
    out = np.zeros((*x.shape[:2], out_h, out_w))
    for i in range(out_h):
        top, bottom = (i * height) // out_h, math.ceil((i + 1) * height / out_h)
        for j in range(out_w):
            left, right = (j * width) // out_w, math.ceil((j + 1) * width / out_w)
            out[:, :, i, j] = x[:, :, top:bottom, left:right].mean(axis=(2, 3))
    return out


def torch_features(state, x):
    """features of REFERENCE: conv, batch norm, ReLU, 2x2 max pool; then the 2x3 pool."""
    x = torch_conv(x, state["features.0.weight"], state["features.0.bias"], padding=1)
    x = torch_batch_norm(x, *(state[f"features.1.{k}"] for k in
                              ("weight", "bias", "running_mean", "running_var")))
    x = np.maximum(x, 0)
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    return torch_adaptive_average(x, 2, 3)


def torchvision_forward(state, x):
    x = torch_features(state, x).reshape(len(x), -1)  # PyTorch's flatten: (C, H, W)
    for index in (0, 3):
        x = np.maximum(x @ state[f"classifier.{index}.weight"].T
                       + state[f"classifier.{index}.bias"], 0)
    return x @ state["classifier.6.weight"].T + state["classifier.6.bias"]


def timm_forward(state, x):
    x = torch_features(state, x)
    x = np.maximum(torch_conv(x, state["pre_logits.fc1.weight"], state["pre_logits.fc1.bias"],
                              padding=0), 0)
    x = np.maximum(torch_conv(x, state["pre_logits.fc2.weight"], state["pre_logits.fc2.bias"],
                              padding=0), 0)
    x = x.mean(axis=(2, 3))  # timm's head: global average pool, then fc
    return x @ state["head.fc.weight"].T + state["head.fc.bias"]


def random_torch_state(layout: str, seed: int = 5) -> dict[str, np.ndarray]:
    """Weights made directly in PyTorch's layout, with no Keras involved."""
    rng = np.random.default_rng(seed)

    def uniform(*shape, low=-0.5):
        return rng.uniform(low, 1.0, shape).astype("float32")

    state = {"features.0.weight": uniform(4, 3, 3, 3), "features.0.bias": uniform(4),
             "features.1.weight": uniform(4), "features.1.bias": uniform(4),
             "features.1.running_mean": uniform(4),
             "features.1.running_var": uniform(4, low=0.5),
             "features.1.num_batches_tracked": np.array(3, np.int64)}
    if layout == "torchvision":
        state.update({"classifier.0.weight": uniform(7, 4 * 2 * 3),
                      "classifier.0.bias": uniform(7),
                      "classifier.3.weight": uniform(6, 7), "classifier.3.bias": uniform(6),
                      "classifier.6.weight": uniform(5, 6), "classifier.6.bias": uniform(5)})
    else:
        state.update({"pre_logits.fc1.weight": uniform(7, 4, 2, 3),
                      "pre_logits.fc1.bias": uniform(7),
                      "pre_logits.fc2.weight": uniform(6, 7, 1, 1),
                      "pre_logits.fc2.bias": uniform(6),
                      "head.fc.weight": uniform(5, 6), "head.fc.bias": uniform(5)})
    return state


@pytest.mark.parametrize("layout, forward", [("torchvision", torchvision_forward),
                                             ("timm", timm_forward)])
def test_outputs_match_a_pytorch_convention_reference(layout, forward, tmp_path):
    state = random_torch_state(layout)
    path = tmp_path / f"{layout}.safetensors"
    save_file(state, str(path))
    model = build_model(vggspec.spec_from_text(REFERENCE))
    load(model, path)
    batch = inputs((6, 10, 3), seed=2)
    expected = forward({k: v.astype("float64") for k, v in state.items()},
                       batch.transpose(0, 3, 1, 2).astype("float64"))
    got = model(batch, training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The check can fail: the first dense layer's rows taken in PyTorch's order (no
    # permutation from (C, H, W) to (H, W, C)) give other outputs.
    arrays = read_checkpoint_arrays(path, model)
    first = state["classifier.0.weight"] if layout == "torchvision" \
        else state["pre_logits.fc1.weight"].reshape(7, -1)
    unpermuted = [first.T.copy(), arrays["fc1"][1]]
    assert not np.allclose(unpermuted[0], arrays["fc1"][0])
    model.get_layer("fc1").set_weights(unpermuted)
    assert np.abs(model(batch, training=False).numpy() - expected).max() > 1e-2


# --- what is ignored, and what is refused -------------------------------------------

def test_a_classifier_is_ignored_by_a_model_without_a_head(source, tmp_path):
    path = tmp_path / "small.safetensors"
    save_file(torchvision_state(source), str(path))
    model = build_model(small_spec("{type: none}"))
    arrays = load(model, path)
    assert sorted(arrays) == ["block1_conv1", "block1_conv1_bn", "block2_conv1",
                              "block2_conv1_bn", "block2_conv2", "block2_conv2_bn"]
    assert_same_weights(model, source)


def test_a_model_cut_after_a_tap_loads_from_a_longer_checkpoint(source, tmp_path):
    path = tmp_path / "small.safetensors"
    save_file(torchvision_state(source), str(path))
    # feature_model builds the layers up to the last tap only.
    features = vggspec.feature_model(small_spec(), ["block1"])
    assert features.layers[-1].name == "block1_pool"
    plan = vggspec.plan(small_spec()).up_to(["block1_pool"])
    for cut in (features, plan):
        arrays = read_checkpoint_arrays(path, cut)
        assert sorted(arrays) == ["block1_conv1", "block1_conv1_bn"]
        np.testing.assert_array_equal(arrays["block1_conv1"][0],
                                      source.get_layer("block1_conv1").get_weights()[0])


def test_data_parallel_prefix_is_dropped(source, tmp_path):
    path = tmp_path / "parallel.safetensors"
    save_file({f"module.{k}": v for k, v in torchvision_state(source).items()}, str(path))
    model = build_model(small_spec())
    load(model, path)
    assert_same_weights(model, source)


def test_other_filter_counts_are_refused_whole_listing_the_layers(source, tmp_path):
    other = randomised(build_model(small_spec(blocks="[[4, max], [8, 8, max]]",
                                              head="{type: none}")))
    path = tmp_path / "other.safetensors"
    save_file(features_to_torch(other, SMALL_CFG, SMALL_CONVS, True), str(path))
    model = build_model(small_spec())
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(vggspec.InputError) as caught:
        load(model, path)
    message = str(caught.value)
    assert message.startswith(
        f"{path}: weights (torchvision's layout) do not fit model 'small', nothing loaded: "
        f"block1_conv1 (features.0) has (4,3,3,3) (4,) in the file, the model needs "
        f"(8,3,3,3) (8,); block1_conv1_bn (features.1) has (4,) (4,) (4,) (4,) in the file, "
        f"the model needs (8,) (8,) (8,) (8,); ")
    # Eight layers differ (the head's two are missing): as many are listed as fit in
    # one line, the rest counted.
    listed, more = message.split("nothing loaded: ")[1].rsplit("; and ", 1)
    assert more.endswith(" more layers")
    assert len(listed.split("; ")) + int(more.split()[0]) == 8
    assert "\n" not in message and len(message) <= 600
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_checkpoint_without_a_head_does_not_fill_one(source, tmp_path):
    path = tmp_path / "features.safetensors"
    save_file(features_to_torch(source, SMALL_CFG, SMALL_CONVS, True), str(path))
    with pytest.raises(vggspec.InputError) as caught:
        read_checkpoint_arrays(path, build_model(small_spec()))
    assert str(caught.value) == (
        f"{path}: weights (torchvision's layout) do not fit model 'small', nothing loaded: "
        f"fc1 (classifier.0) missing from the file (model needs (12,64) (12,)); predictions "
        f"(classifier.3) missing from the file (model needs (5,12) (5,))")


def test_a_head_of_another_size_loads_partially_when_asked(source, tmp_path):
    path = tmp_path / "small.safetensors"
    save_file(torchvision_state(source), str(path))
    spec = small_spec("{type: dense, adaptive_pool: [2, 2], units: [12], classes: 3}")
    with pytest.raises(vggspec.InputError, match=re.escape(
            "predictions (classifier.3) has (5,12) (5,) in the file, the model needs "
            "(3,12) (3,)")):
        read_checkpoint_arrays(path, build_model(spec))
    skipped = []
    arrays = read_checkpoint_arrays(path, build_model(spec), skipped=skipped)
    assert "predictions" not in arrays and "fc1" in arrays and len(arrays) == 7
    assert skipped == ["predictions (classifier.3) has (5,12) (5,) in the file, the model "
                       "needs (3,12) (3,)"]


@pytest.mark.parametrize("blocks, batch_norm, message", [
    # One block of two convs against two blocks of one: the same shapes, shifted places.
    ("[[8, 8, max]]", True,
     "checkpoint and model 'small' differ at block1_conv2, nothing loaded: block1_conv2 "
     "would be features.3, a 3x3 conv, 8 to 8 channels; the checkpoint has no weights there "
     "(its next layer with weights: features.4, a 3x3 conv, 8 to 8 channels)"),
    ("[[8, max], [16, 16, max]]", False,
     "checkpoint and model 'small' differ after block1_conv1, nothing loaded: the "
     "checkpoint's features.1 is a batch norm of 8 channels, which the model lacks (its "
     "next layer with weights, block2_conv1, would be features.3)"),
])
def test_conv_layers_that_differ_are_refused_at_the_first(blocks, batch_norm, message,
                                                          tmp_path):
    other = randomised(build_model(small_spec(blocks="[[8, max], [8, max]]",
                                              head="{type: none}")))
    path = tmp_path / "other.safetensors"
    state = features_to_torch(other, [8, "M", 8, "M"], ["block1_conv1", "block2_conv1"], True)
    if not batch_norm:
        other = randomised(build_model(small_spec(head="{type: none}")))
        state = features_to_torch(other, SMALL_CFG, SMALL_CONVS, True)
    save_file(state, str(path))
    model = build_model(small_spec(blocks=blocks, head="{type: none}", batch_norm=batch_norm))
    with pytest.raises(vggspec.InputError) as caught:
        read_checkpoint_arrays(path, model)
    assert str(caught.value) == f"{path}: {message}"


def test_a_batch_norm_spec_against_a_plain_checkpoint(tmp_path):
    plain = randomised(build_model(small_spec(head="{type: none}", batch_norm=False)))
    path = tmp_path / "plain.safetensors"
    save_file(features_to_torch(plain, SMALL_CFG, SMALL_CONVS, False), str(path))
    with pytest.raises(vggspec.InputError) as caught:
        read_checkpoint_arrays(path, build_model(small_spec(head="{type: none}")))
    assert str(caught.value) == (
        f"{path}: checkpoint and model 'small' differ at block1_conv1_bn, nothing loaded: "
        f"block1_conv1_bn would be features.1, a batch norm of 8 channels; the checkpoint "
        f"has no weights there (its next layer with weights: features.3, a 3x3 conv, 8 to 16 "
        f"channels)")
    model = build_model(small_spec(head="{type: none}", batch_norm=False))
    load(model, path)
    assert_same_weights(model, plain)


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": np.zeros((4, 3, 7, 7), "float32"),
               "fc.weight": np.zeros((5, 4), "float32")}, str(path))
    with pytest.raises(vggspec.InputError) as caught:
        read_checkpoint_arrays(path, build_model(small_spec()))
    assert str(caught.value) == (
        f"{path}: not a VGG state dict in torchvision's or timm's layout (no features.N or "
        f"classifier.N tensors); its first keys are 'conv1.weight', 'fc.weight'")


def test_values_float32_cannot_hold_are_refused(source, tmp_path):
    state = torchvision_state(source)
    state["features.0.bias"] = np.array([np.inf] + [0.0] * 7, "float64")
    path = tmp_path / "inf.safetensors"
    save_file(state, str(path))
    with pytest.raises(vggspec.InputError, match=re.escape(
            f"{path}: 'features.0.bias' holds values that are not finite float32 numbers")):
        read_checkpoint_arrays(path, build_model(small_spec()))


def test_half_precision_and_bfloat16_are_widened(tmp_path):
    values = np.array([1.5, -2.0, 0.15625, 3.0e38], "float32")
    bfloat16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()  # exact: low bits 0
    header = json.dumps({"b": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
                         "h": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]}}).encode()
    path = tmp_path / "half.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bfloat16
                     + np.array([0.5, -1], "<f2").tobytes())
    state = read_state_dict(path)
    truncated = (values.view(np.uint32) & 0xFFFF0000).view(np.float32)
    assert truncated[3] != values[3]  # 3.0e38 is not a bfloat16: its low bits go
    np.testing.assert_array_equal(state["b"], truncated)
    assert state["b"].dtype == np.float32 and state["h"].dtype == np.float16


# --- hostile safetensors files: each a one-line refusal, nothing allocated -------------

def safetensors_bytes(header, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


W = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}


@pytest.mark.parametrize("content, message", [
    (safetensors_bytes(b'{"w": 1}', length=1 << 40),
     "a safetensors header of 1,099,511,627,776 bytes, more than the 16,777,216 read; refused"),
    (safetensors_bytes(b'{"w": 1}', length=1000),
     "truncated safetensors file: its header claims 1,000 bytes, and 8 follow"),
    (safetensors_bytes([W]), "not a safetensors or PyTorch checkpoint"),
    (safetensors_bytes({"w": [W]}),
     "tensor 'w': must be an object with dtype, shape and data_offsets, got a list"),
    (safetensors_bytes({"w": W}, bytes(8)),
     "tensor 'w' ends at byte 16 of the data, which holds 8 bytes (truncated file?); refused"),
    (safetensors_bytes({"w": {**W, "data_offsets": [0, 1 << 62]}}, bytes(16)),
     "tensor 'w' ends at byte 4611686018427387904 of the data, which holds 16 bytes "
     "(truncated file?); refused"),
    (safetensors_bytes({"w": {**W, "dtype": "BOOL", "data_offsets": [0, 4]}}, bytes(4)),
     "tensor 'w' is 'BOOL': only float and integer tensors are read (F16, BF16, F32, F64, "
     "I8 to I64, U8 to U64); refused"),
    (safetensors_bytes({"w": {**W, "dtype": {"kind": "object"}}}, bytes(16)),
     "tensor 'w': its dtype must be text, got an object"),
    (safetensors_bytes(b'{"w": ' + json.dumps(W).encode() + b', "w": '
                       + json.dumps(W).encode() + b'}', bytes(16)),
     "the safetensors header names 'w' twice; refused"),
    (safetensors_bytes({"w": {**W, "shape": [1 << 40, 1 << 40]}}, bytes(16)),
     "tensor 'w' holds 16 bytes, its shape and dtype need 4,835,703,278,458,516,698,824,704; "
     "refused"),
    (safetensors_bytes({"w": {**W, "shape": [10 ** 40] * 8}}, bytes(16)),
     "tensor 'w' holds 16 bytes, its shape and dtype need more than 10^30; refused"),
    (safetensors_bytes({"w": {**W, "shape": [1] * 9}}, bytes(16)),
     "tensor 'w': its shape must be a list of at most 8 whole numbers, got a list"),
    (safetensors_bytes({"w": {**W, "shape": [2, -2]}}, bytes(16)),
     "tensor 'w': its shape must be a list of at most 8 whole numbers, got a list"),
    (safetensors_bytes({"w": {**W, "data_offsets": [16, 0]}}, bytes(16)),
     "tensor 'w': its data_offsets must be two whole numbers, begin and end, got a list"),
    (safetensors_bytes({"w": W, "v": W}, bytes(16)),
     "tensor 'v' overlaps the one before it (it starts at byte 0, the data so far ends at "
     "16); refused"),
    (safetensors_bytes({"w": {**W, "data_offsets": [4, 20]}}, bytes(20)),
     "tensor 'w' leaves a gap after the one before it (it starts at byte 4, the data so far "
     "ends at 0); refused"),
    (safetensors_bytes({"w": W}, bytes(24)),
     "8 bytes follow the last tensor; not a safetensors file as safetensors writes them; "
     "refused"),
    (safetensors_bytes(b'{"w": \xff}', bytes(16)),
     "the safetensors header is not UTF-8 text; refused"),
    (safetensors_bytes(b'{"w": [' + b"[" * 100_000 + b"]" * 100_000 + b']}'),
     "the safetensors header is nested too deeply; refused"),
    (safetensors_bytes(b'{"w": }'),
     "the safetensors header is not valid JSON: Expecting value: line 1 column 7 (char 6)"),
    (safetensors_bytes({"__metadata__": {"format": 1}}),
     "the safetensors __metadata__ must map names to text; refused"),
    (safetensors_bytes({"\x1b[31mred\n": W}, bytes(16)),
     "not a VGG state dict in torchvision's or timm's layout (no features.N or classifier.N "
     "tensors); its first keys are '\\x1b[31mred\\n'"),
])
def test_hostile_safetensors_headers_are_refused_in_one_line(content, message, tmp_path):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(content)
    with pytest.raises(vggspec.InputError) as caught:
        read_checkpoint_arrays(path, vggspec.plan(small_spec()))
    assert str(caught.value) == f"{path}: {message}"
    if "VGG state dict" not in message:
        with pytest.raises(vggspec.InputError) as again:
            read_state_dict(path)
        assert str(again.value) == str(caught.value)


def test_a_cut_file_is_refused_wherever_it_is_cut(source, tmp_path):
    whole = tmp_path / "whole.safetensors"
    save_file(torchvision_state(source), str(whole))
    data = whole.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for size in (0, 5, 9, 100, len(data) // 2, len(data) - 1):
        cut.write_bytes(data[:size])
        with pytest.raises(vggspec.InputError) as caught:
            read_checkpoint_arrays(cut, build_model(small_spec()))
        message = str(caught.value)
        assert message.startswith(f"{cut}: ") and "\n" not in message
        assert any(words in message for words in ("truncated", "not a safetensors"))


def test_special_files_are_refused_unread(tmp_path):
    import os

    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(vggspec.InputError, match="is a named pipe"):
        read_state_dict(fifo)
    with pytest.raises(vggspec.InputError, match="no such file"):
        read_state_dict(tmp_path / "missing.safetensors")


def test_a_huge_tensor_that_does_not_fit_costs_nothing(tmp_path):
    """A (sparse) 1 GiB file whose header is sound, holding a tensor of the wrong shape:
    refused from the header, without reading the tensor."""
    import tracemalloc

    header = json.dumps({
        "features.0.bias": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
        "features.0.weight": {"dtype": "F32", "shape": [1 << 20, 64, 2, 2],
                              "data_offsets": [32, 32 + (1 << 30)]}}).encode()
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 32 + (1 << 30))
    model = build_model(small_spec(blocks="[[8, max]]", head="{type: none}",
                                   batch_norm=False))
    tracemalloc.start()
    try:
        with pytest.raises(vggspec.InputError, match=re.escape(
                "block1_conv1 (features.0) has (1048576,64,2,2) (8,) in the file, the model "
                "needs (8,3,3,3) (8,)")):
            read_checkpoint_arrays(path, model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_damaged_files_give_a_load_or_one_line(source, tmp_path):
    """A seeded fuzz: bytes of a sound file changed, cut or repeated, 600 times. Each
    either loads or is refused with one InputError line; nothing else escapes."""
    whole = tmp_path / "whole.safetensors"
    save_file(torchvision_state(source), str(whole))
    data = whole.read_bytes()
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    rng = np.random.default_rng(11)
    model = build_model(small_spec())
    path = tmp_path / "damaged.safetensors"
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(600):
        damaged = bytearray(data)
        how = rng.integers(3)
        if how == 0:  # a few bytes of the header or its length changed
            for at in rng.integers(0, header_end, rng.integers(1, 4)):
                damaged[at] = rng.integers(256)
        elif how == 1:
            damaged = damaged[:rng.integers(len(data))]
        else:  # a piece of the header repeated
            at = rng.integers(8, header_end)
            damaged[at:at] = damaged[at:at + rng.integers(1, 40)]
        path.write_bytes(bytes(damaged))
        try:
            read_checkpoint_arrays(path, model)
            outcomes["loaded"] += 1
        except vggspec.InputError as error:
            assert "\n" not in str(error) and len(str(error)) <= 600
            outcomes["refused"] += 1
    assert outcomes["refused"] > 400


# --- PyTorch pickles: only through torch.load(weights_only=True) ----------------------

def fake_torch_files(tmp_path):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"features.0.weight": 1}, protocol=2))
    archive_path = tmp_path / "zipped.pt"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("vgg/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("vgg/version", "3\n")
    return legacy, archive_path


def test_without_torch_a_pickle_asks_for_torch_or_safetensors(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    for path in fake_torch_files(tmp_path):
        assert checkpoint_format(path) == "torch"
        with pytest.raises(vggspec.InputError) as caught:
            read_checkpoint_arrays(path, build_model(small_spec()))
        assert str(caught.value) == (f"{path}: a PyTorch pickle; install torch (it is read "
                                     f"with weights_only=True) or convert it to .safetensors")


def test_pth_files_load_through_torch(source, tmp_path):
    torch = pytest.importorskip("torch")
    state = {k: torch.from_numpy(np.array(v)) for k, v in torchvision_state(source).items()}
    for name, zipped in (("zipped.pth", True), ("legacy.pth", False)):
        path = tmp_path / name
        torch.save(state, path, _use_new_zipfile_serialization=zipped)
        assert checkpoint_format(path) == "torch"
        model = build_model(small_spec())
        load(model, path)
        assert_same_weights(model, source)
    wrapped = tmp_path / "training.pth"
    torch.save({"epoch": 3, "state_dict": state}, wrapped)
    model = build_model(small_spec())
    load(model, wrapped)
    assert_same_weights(model, source)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_runs_code_is_refused_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Payload(marker)}, path)
    with pytest.raises(vggspec.InputError, match=re.escape(
            f"{path}: cannot read the PyTorch checkpoint with weights_only=True: ")):
        read_state_dict(path)
    assert not marker.exists()


def test_the_public_loaders_read_checkpoints_by_content(source, tmp_path):
    """load_weights, build_model(weights=...) and `vggspec build --weights` take a
    torchvision safetensors file like any other weights file, partial loads included."""
    import vggspec
    from conftest import run_cli

    path = tmp_path / "weights.bin"                  # no telling name: content decides
    save_file(torchvision_state(source), str(path))
    model = build_model(small_spec())
    assert vggspec.load_weights(model, path).loaded == tuple(
        layer.name for layer in source.layers if layer.weights)
    assert_same_weights(model, source)
    assert_same_weights(vggspec.build_model(small_spec(), weights=path), source)
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    result = run_cli("build", str(spec), "--weights", str(path))
    assert result.returncode == 0, result.stderr
