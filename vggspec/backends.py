"""Which Keras backend and device run the model, and a compiled inference call for each.

    KERAS_BACKEND (tensorflow | jax | torch) --start--> "on jax, NVIDIA H200"
    feature model --compiled_call--> numpy batch in, {tap: numpy array} out

vggspec builds plain Keras 3 models, so they run on every backend Keras has. What
differs is how an inference call is compiled: ``tf.function`` on TensorFlow, a jitted
``stateless_call`` on JAX (the weights passed in, so XLA sees one pure function), and a
no-grad call on PyTorch. Only this module (and training's tf.data pipeline) knows the
difference.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

import numpy as np


def backend() -> str:
    """The Keras backend this process uses: KERAS_BACKEND, else the ``backend`` of
    keras.json (in $KERAS_HOME, else ~/.keras), else tensorflow, as Keras decides it;
    read without importing Keras, which fails when its backend is not installed."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    import json

    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return "tensorflow"
    chosen = config.get("backend") if isinstance(config, dict) else None
    return chosen if isinstance(chosen, str) else "tensorflow"


def device() -> str:
    """The device the backend computes on: a GPU's name (and how many), or CPU."""
    name = backend()
    if name == "jax":
        import jax

        devices = jax.devices()
        kind = devices[0].device_kind if devices[0].platform != "cpu" else "CPU"
        return kind if len(devices) == 1 or kind == "CPU" else f"{len(devices)} x {kind}"
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            gpu = torch.cuda.get_device_name(0)
            return gpu if count == 1 else f"{count} x {gpu}"
        return "CPU"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    gpu = details.get("device_name", "GPU")
    return gpu if len(gpus) == 1 else f"{len(gpus)} x {gpu}"


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True):
    """Silence what C++ code writes to stderr while the block runs (TensorFlow's and
    XLA's start-up notes about CPU features and missing CUDA drivers, which users take
    for errors); Python's own errors surface after it."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_quiet_start: list[str] = []


def quiet_keras():
    """Keras, imported the first time with the backend's C++ start-up notes silenced
    (and its devices probed, which is when TensorFlow reports missing CUDA drivers), so
    that library calls such as ``build_model`` print nothing a user would take for an
    error. ``VGGSPEC_NATIVE_LOGS=1`` keeps them."""
    if not _quiet_start and "keras" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with native_stderr_silenced(not os.environ.get("VGGSPEC_NATIVE_LOGS")):
            import keras  # noqa: F401

            if backend() in EXTRAS:
                _quiet_start.append(device())
    import keras

    return keras


def quiet_tensorflow():
    """TensorFlow, imported the first time with its C++ start-up notes silenced: on the
    JAX or PyTorch backend, tf.data (training, embedding) imports it after Keras."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with native_stderr_silenced(not os.environ.get("VGGSPEC_NATIVE_LOGS")):
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
    import tensorflow as tf

    return tf


def start(quiet: bool = True) -> str:
    """Import Keras and its backend with their start-up notes silenced, and say where
    models will run: ``jax, NVIDIA H200`` or ``tensorflow, CPU``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    require(backend())
    with native_stderr_silenced(quiet):
        import keras  # noqa: F401

        where = device()
    return f"{backend()}, {where}"


EXTRAS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def require(module: str, why: str = "") -> None:
    """Refuse in one line (UsageError) when ``module`` (a backend, or TensorFlow for
    what needs it whatever the backend) is not installed, naming the extra that
    installs it."""
    import importlib.util

    from .errors import UsageError

    if module not in EXTRAS:
        raise UsageError(f"KERAS_BACKEND={module}: vggspec runs on tensorflow, jax or torch")
    if importlib.util.find_spec(module) is None:
        have = [name for name in EXTRAS if importlib.util.find_spec(name) is not None]
        other = "" if why or not have else (f" (or set KERAS_BACKEND to a backend you have: "
                                            f"{' or '.join(have)})")
        raise UsageError(f"{why or f'the Keras backend is {module}'}, which is not "
                         f"installed: pip install 'vggspec[{EXTRAS[module]}]'{other}")


PRECISIONS = ("float32", "bfloat16", "float16")


@contextlib.contextmanager
def precision_policy(name: str):
    """Keras' global dtype policy while models are built: float32, or mixed_bfloat16 /
    mixed_float16 (computation in that type, weights in float32); restored after."""
    from .errors import UsageError

    if name not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    keras = quiet_keras()
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "float32" else f"mixed_{name}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def compiled_call(model) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A compiled inference call of a feature model on this backend: numpy batch in,
    {tap: float32 numpy array} out (a mixed-precision model's bfloat16 maps too);
    several times faster than ``model.predict`` for small batches. The model's current
    weights are used at each call."""
    name = backend()
    if name == "jax":
        import jax

        @jax.jit
        def call(trainable, non_trainable, batch):
            outputs, _ = model.stateless_call(trainable, non_trainable, batch, training=False)
            return outputs

        def run_jax(batch: np.ndarray) -> dict[str, np.ndarray]:
            outputs = call([v.value for v in model.trainable_variables],
                           [v.value for v in model.non_trainable_variables], batch)
            return {tap: np.asarray(value, dtype=np.float32) for tap, value in outputs.items()}

        return run_jax
    if name == "torch":
        import torch

        from keras import ops

        def run_torch(batch: np.ndarray) -> dict[str, np.ndarray]:
            with torch.no_grad():
                outputs = model(ops.convert_to_tensor(batch), training=False)
            return {tap: ops.convert_to_numpy(value).astype(np.float32, copy=False)
                    for tap, value in outputs.items()}

        return run_torch
    import tensorflow as tf

    graph = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    def run_tensorflow(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {tap: value.numpy().astype(np.float32, copy=False)
                for tap, value in graph(tf.constant(batch)).items()}

    return run_tensorflow


def compiled_vjp(model) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A compiled vector-Jacobian product of a single-output model on this backend:
    ``(x, weights) -> (y, d sum(y * weights) / dx)``, numpy in and float32 numpy out.

    The one gradient that Grad-CAM (``weights`` a one-hot class) and filter pictures
    (``weights`` selecting one channel per image) need, written once per backend:
    ``GradientTape`` on TensorFlow, ``jax.vjp`` over ``stateless_call`` on JAX,
    autograd on PyTorch. The model runs in inference mode with its current weights.

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> y, grad = compiled_vjp(model)(np.ones((1, 3)), np.array([[1.0, 0.0]]))
    >>> y.shape, grad.shape
    ((1, 2), (1, 3))
    """
    name = backend()
    if name == "jax":
        import jax

        @jax.jit
        def pull(trainable, non_trainable, x, weights):
            def forward(x):
                return model.stateless_call(trainable, non_trainable, x, training=False)[0]

            y, back = jax.vjp(forward, x)
            return y, back(weights.astype(y.dtype))[0]

        def run_jax(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            y, grad = pull([v.value for v in model.trainable_variables],
                           [v.value for v in model.non_trainable_variables],
                           np.asarray(x, np.float32), np.asarray(weights, np.float32))
            return np.asarray(y, np.float32), np.asarray(grad, np.float32)

        return run_jax
    if name == "torch":
        import torch

        def run_torch(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = torch.tensor(np.asarray(x, np.float32), requires_grad=True,
                             device=model.trainable_variables[0].value.device)
            y = model(x, training=False)
            y.backward(torch.as_tensor(np.asarray(weights, np.float32), device=y.device,
                                       dtype=y.dtype))
            return (y.detach().float().cpu().numpy(), x.grad.float().cpu().numpy())

        return run_torch
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def pull_tensorflow(x, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=False)
        return y, tape.gradient(y, x, output_gradients=tf.cast(weights, y.dtype))

    def run_tensorflow(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, grad = pull_tensorflow(tf.constant(x, tf.float32), tf.constant(weights, tf.float32))
        return y.numpy().astype(np.float32), grad.numpy().astype(np.float32)

    return run_tensorflow
