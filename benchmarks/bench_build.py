"""Build time and forward throughput of our VGG16 against keras.applications.VGG16.

    python benchmarks/bench_build.py [--repeats 5]

Both models are built and run in this one process, alternately, so noise hits both.
Forward passes use the same compiled call for both (a tf.function of the model), the
way the CLI runs them. Targets (issue 3): build time at most 1.1x the reference,
throughput at least 0.97x; the feature model (all five block taps) against the plain
conv base (include_top=False).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vggspec.builder import build_model, feature_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "archs" / "vgg16.yaml"


def timed(make, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        make()
        times.append(time.perf_counter() - started)
        keras.backend.clear_session()
    return statistics.median(times)


def throughput(model, batch: int, repeats: int, size: int = 224) -> float:
    """Images per second of a compiled call, median of ``repeats`` timed calls."""
    call = tf.function(lambda x: model(x, training=False))
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)),
                         tf.float32)
    tf.nest.map_structure(lambda t: t.numpy(), call(images))  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), call(images))
        times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    r = args.repeats
    # warm both code paths once
    build_model(SPEC), keras.applications.VGG16(weights=None)
    keras.backend.clear_session()
    ours_build = statistics.median(
        [timed(lambda: build_model(SPEC), 1) for _ in range(r)])
    theirs_build = statistics.median(
        [timed(lambda: keras.applications.VGG16(weights=None), 1) for _ in range(r)])
    print(f"build (median of {r}):  ours {ours_build:.3f} s  keras.applications "
          f"{theirs_build:.3f} s  ratio {ours_build / theirs_build:.2f}x (target <= 1.1x)")

    ours, theirs = build_model(SPEC), keras.applications.VGG16(weights=None)
    for batch in (1, 8):
        a, b = [], []
        for _ in range(5):  # alternate so drift in machine load hits both
            a.append(throughput(ours, batch, r))
            b.append(throughput(theirs, batch, r))
        a, b = statistics.median(a), statistics.median(b)
        print(f"forward batch {batch}:  ours {a:.1f} img/s  keras.applications {b:.1f} "
              f"img/s  ratio {a / b:.2f}x (target >= 0.97x)")

    features = feature_model(ours)
    base = keras.applications.VGG16(weights=None, include_top=False)
    for batch in (1, 8):
        a, b = [], []
        for _ in range(5):
            a.append(throughput(features, batch, r))
            b.append(throughput(base, batch, r))
        a, b = statistics.median(a), statistics.median(b)
        print(f"features batch {batch}:  five taps {a:.1f} img/s  conv base {b:.1f} img/s  "
              f"ratio {a / b:.2f}x")


if __name__ == "__main__":
    main()
