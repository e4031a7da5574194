"""Forward throughput of one vggspec model on each installed Keras backend, as ratios
against TensorFlow measured in the same run.

    python benchmarks/bench_backends.py [--batch 8] [--size 224] [--repeats 5]

A Keras backend is chosen once per process, so each backend runs in its own child
process, one after the other: VGG16's conv base (to block5) built from archs/vgg16.yaml,
the same weights file, vggspec's compiled call for that backend (tf.function, a jitted
stateless call, a no-grad call), a batch of random images already in memory. The figure
is the median images/s of --repeats timed calls after two warm-up calls. Backends that
are not installed are listed as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, statistics, sys, time
import numpy as np
import vggspec
from vggspec.backends import start
from vggspec.features import compiled

weights, batch, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
where = start()
spec = vggspec.spec_from_text(f"extends: vgg16\\ninput: {{shape: [{size}, {size}, 3]}}\\n"
                              "head: {type: none}\\n")
model = vggspec.feature_model(spec, ["block5"], weights=weights)
run = compiled(model)
x = np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype("float32")
for _ in range(2):
    run(x)
rates = []
for _ in range(repeats):
    start_time = time.perf_counter()
    run(x)
    rates.append(batch / (time.perf_counter() - start_time))
print(json.dumps({"where": where, "rate": statistics.median(rates)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        weights = Path(temporary) / "vgg16_conv.weights.h5"
        subprocess.run([sys.executable, "-c", (
            "import vggspec; spec = vggspec.spec_from_text('extends: vgg16\\n"
            f"input: {{shape: [{args.size}, {args.size}, 3]}}\\nhead: {{type: none}}\\n'); "
            f"vggspec.build_model(spec).save_weights({str(weights)!r})")],
            check=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True)
        results = {}
        for backend in ("tensorflow", "jax", "torch"):
            if importlib.util.find_spec(backend) is None:
                results[backend] = None
                continue
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            done = subprocess.run([sys.executable, "-c", CHILD, str(weights), str(args.batch),
                                   str(args.size), str(args.repeats)], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            if done.returncode:
                print(done.stderr[-2000:])
                raise SystemExit(f"{backend} failed")
            results[backend] = json.loads(done.stdout.splitlines()[-1])
    base = results["tensorflow"]["rate"]
    print(f"VGG16 to block5, {args.size}x{args.size}, batch {args.batch}, float32, "
          f"median of {args.repeats} calls")
    for backend, result in results.items():
        if result is None:
            print(f"{backend:11s} not installed")
        else:
            print(f"{backend:11s} {result['rate']:8.2f} images/s  {result['rate'] / base:6.2f}x "
                  f"of tensorflow  ({result['where']})")


if __name__ == "__main__":
    main()
