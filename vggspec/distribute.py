"""Which devices and machines a training run uses: TensorFlow's own strategies.

    TF_CONFIG / local GPUs --strategy--> tf.distribute strategy --(fit under it)--> replicas

- ``TF_CONFIG`` naming two or more workers: ``MultiWorkerMirroredStrategy`` (each worker
  runs the same command; worker 0, or the ``chief`` task, writes the run's files).
- Several local GPUs: ``MirroredStrategy``.
- Otherwise TensorFlow's default strategy (one device).

Keras 3.15's ``fit`` cannot run under ``MultiWorkerMirroredStrategy`` as released: its
symbolic build reduces the whole first batch with ``strategy.reduce`` (a ValueError about
converting a PerReplica value), and its per-replica reduction of the loss and metrics
asks for ``axis=0`` of scalars ("Invalid reduction dimension 0 for input with 0
dimensions"; keras-team/keras#20585, tensorflow/tensorflow#72388). ``multi_worker_fit``
replaces those two private functions for the duration of a multi-worker ``fit`` only,
and only on the Keras version they were written against (the pin is <3.16): the build
takes this worker's local batch, which has the shapes it needs, and scalars are reduced
over no axis. Checked here with two workers on one machine: both end with identical
weights, batch norm's moving statistics included (with synchronised batch norm), equal
to a one-process run with the same global batch up to float rounding.

The strategy must exist before TensorFlow runs anything else in the process (collective
ops are configured at start-up), so ``strategy()`` is called before any image is decoded.
"""

from __future__ import annotations

import contextlib
import json
import os

PATCHED_KERAS = "3.15."


def cluster() -> dict:
    """TF_CONFIG as a dict ({} when unset); raises UsageError for anything but a JSON
    object."""
    from .errors import UsageError, clip

    text = os.environ.get("TF_CONFIG") or "{}"
    try:
        config = json.loads(text)
    except ValueError as error:
        raise UsageError(f"TF_CONFIG is not JSON ({clip(str(error), 80)}); see the README's "
                         f"Training on several machines") from None
    cluster_, task = (config.get("cluster", {}), config.get("task", {})) \
        if isinstance(config, dict) else (None, None)
    sound = (isinstance(cluster_, dict) and isinstance(task, dict)
             and all(isinstance(addresses, list) and all(isinstance(a, str) for a in addresses)
                     for addresses in cluster_.values())
             and isinstance(task.get("type", ""), str)
             and isinstance(task.get("index", 0), int)
             and not isinstance(task.get("index", 0), bool))
    if not sound:
        raise UsageError("TF_CONFIG must be a JSON object: a cluster mapping task types to "
                         "lists of host:port, and a task with a type and a whole-number "
                         "index")
    return config


def is_multi_worker() -> bool:
    workers = cluster().get("cluster", {})
    return sum(len(workers.get(kind, [])) for kind in ("chief", "worker")) > 1


def is_chief() -> bool:
    """Whether this process writes the run's files: always without TF_CONFIG; under it,
    the ``chief`` task if there is one, else worker 0."""
    config = cluster()
    task = config.get("task") or {}
    if not task:
        return True
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def strategy():
    """TensorFlow's distribution strategy for this process (see the module docstring)."""
    from .backends import quiet_tensorflow

    tf = quiet_tensorflow()

    if is_multi_worker():
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe(distribution) -> str:
    """`1 device`, `2 replicas on 2 workers`: for the start-up line."""
    replicas = distribution.num_replicas_in_sync
    if is_multi_worker():
        workers = cluster()["cluster"]
        count = sum(len(workers.get(kind, [])) for kind in ("chief", "worker"))
        return f"{replicas} replicas on {count} workers"
    return f"{replicas} device{'s' * (replicas != 1)}"


@contextlib.contextmanager
def multi_worker_fit(distribution):
    """Keras' two multi-worker ``fit`` faults worked around while the block runs (see the
    module docstring); nothing is changed for any other strategy or Keras version."""
    import keras

    from .backends import quiet_tensorflow

    tf = quiet_tensorflow()

    multi = isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy)
    if not multi or not keras.__version__.startswith(PATCHED_KERAS):
        yield
        return
    from keras.src.backend.tensorflow import trainer

    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = trainer.reduce_per_replica

    def local_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: self.distribute_strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues) else value,
                    next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def scalar_reduce(values, strategy, reduction):
        if reduction in ("auto", "mean"):
            return tf.nest.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return original_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = local_build
    trainer.reduce_per_replica = scalar_reduce
    try:
        yield
    finally:
        trainer.TensorFlowTrainer._maybe_symbolic_build = original_build
        trainer.reduce_per_replica = original_reduce
