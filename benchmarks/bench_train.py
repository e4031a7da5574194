"""`vggspec train` against a hand-written `model.fit` of the same model on the same data.

    python benchmarks/bench_train.py [--images 1280] [--epochs 6] [--rounds 2]

All in this process, on a folder of generated 32x32 grey images in 10 classes and the
spec of examples/digits.yaml:

1. images/s of `vggspec train` (the whole run: its callbacks write last.keras,
   history.csv, curves.png and state.json after every epoch, and TensorBoard logs),
   against `model.fit` on the same built and compiled model and the same tf.data
   batches with no callbacks. Medians over the epochs after the first (which traces),
   alternating the two for --rounds rounds. Target (issue 11): at least 0.95x.
2. The share of step time spent waiting for input: an epoch on the real pipeline
   against an epoch on one batch held in memory and repeated (no input cost), and,
   steadier on two cores, the pipeline alone (images/s with no model) as a share of a
   training step's time. Target: under 5%.
3. Peak memory of the process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from vggspec import training  # noqa: E402
from vggspec.data import batches, decode, scan_folder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "digits.yaml"


def make_folder(root: Path, count: int, classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")
    return root


def ours(data: Path, work: Path, epochs: int) -> list[float]:
    run = Path(tempfile.mkdtemp(dir=work)) / "run"
    result = training.train(SPEC, data, run, epochs=epochs, val_split=0.0,
                            log=lambda line: None)
    return [row["images_per_second"] for row in result.history[1:]]


def peer(data: Path, epochs: int, ideal: bool = False) -> list[float]:
    """model.fit by hand: the model vggspec builds, compiled as vggspec compiles it, on
    the same batches; ``ideal``: one batch repeated from memory instead."""
    import keras
    import tensorflow as tf

    from vggspec import load_spec

    spec = load_spec(SPEC)
    settings = training.settings_for(spec, epochs=epochs, val_split=0.0)
    folder = scan_folder(data)
    decoded = decode(list(folder.files), 1, (32, 32))
    labels = np.asarray(folder.labels)[decoded.kept]
    keras.utils.set_random_seed(settings.seed)
    epoch = tf.Variable(0, dtype=tf.int64)
    dataset = batches(decoded.images, labels, 10, settings.batch_size, "tf",
                      seed=settings.seed, epoch=epoch, augment=settings.augment)
    steps = -(-len(labels) // settings.batch_size)
    if ideal:
        dataset = tf.data.Dataset.from_tensors(next(iter(dataset))).repeat(steps)
    model = training._build(spec, None, False, 1)
    model.compile(optimizer=training._optimizer(settings, steps, epochs),
                  loss=training._loss(spec, settings),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, number, logs=None):
            epoch.assign(number)
            self.start = time.perf_counter()

        def on_epoch_end(self, number, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(dataset, epochs=epochs, callbacks=[Timer()], verbose=0, shuffle=False)
    count = steps * settings.batch_size if ideal else len(labels)
    return [count / seconds for seconds in times[1:]]


def pipeline_alone(data: Path, epochs: int) -> list[float]:
    import tensorflow as tf

    from vggspec import load_spec

    settings = training.settings_for(load_spec(SPEC))
    folder = scan_folder(data)
    decoded = decode(list(folder.files), 1, (32, 32))
    labels = np.asarray(folder.labels)[decoded.kept]
    epoch = tf.Variable(0, dtype=tf.int64)
    dataset = batches(decoded.images, labels, 10, settings.batch_size, "tf",
                      seed=settings.seed, epoch=epoch, augment=settings.augment)
    rates = []
    for number in range(epochs):
        epoch.assign(number)
        start = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _ in dataset)
        rates.append(count / (time.perf_counter() - start))
    return rates[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1280)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        data = make_folder(work / "data", args.images)
        mine: list[float] = []
        theirs: list[float] = []
        ideal: list[float] = []
        alone = statistics.median(pipeline_alone(data, args.epochs))
        for _ in range(args.rounds):
            mine += ours(data, work, args.epochs)
            theirs += peer(data, args.epochs)
            ideal += peer(data, args.epochs, ideal=True)
        a, b, c = (statistics.median(values) for values in (mine, theirs, ideal))
        print(f"{args.images} images 32x32x1, examples/digits.yaml, batch 64, "
              f"{args.epochs} epochs x {args.rounds} rounds (medians, first epoch left out)")
        print(f"vggspec train:        {a:8,.0f} images/s")
        print(f"model.fit by hand:    {b:8,.0f} images/s")
        print(f"ratio:                {a / b:8.3f}x   (target >= 0.95)")
        print(f"one batch in memory:  {c:8,.0f} images/s")
        print(f"waiting for input:    {max(0.0, 1 - b / c) * 100:7.1f}%   (target < 5%; "
              f"the two epochs' difference, noisy on 2 cores)")
        print(f"pipeline alone:       {alone:8,.0f} images/s: input costs "
              f"{a / alone * 100:.1f}% of a training step's time")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory:          {peak:8,.0f} MiB (the whole process)")


if __name__ == "__main__":
    main()
