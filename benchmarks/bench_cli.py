"""Start-up time of the light commands against `import tensorflow`, whole processes.

    python benchmarks/bench_cli.py [--runs 7]

Prints the median wall time of each command over several runs, measured in the same
run on the same machine, and each vggspec command's ratio to the TensorFlow import.
Target (issue 2): every vggspec command under 10% of the TensorFlow import (issue 8
adds `diff`, which plans two specs: the same target).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "vggspec validate archs/vgg16.yaml": [sys.executable, "-m", "vggspec", "validate",
                                          "archs/vgg16.yaml"],
    "vggspec summary archs/vgg16.yaml": [sys.executable, "-m", "vggspec", "summary",
                                         "archs/vgg16.yaml"],
    "vggspec diff archs/vgg16.yaml archs/vgg19.yaml": [
        sys.executable, "-m", "vggspec", "diff", "archs/vgg16.yaml", "archs/vgg19.yaml"],
    'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
}


def median_seconds(command: list[str], runs: int) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # Interleave a warm-up of each so the file cache treats them alike.
    for command in COMMANDS.values():
        median_seconds(command, 1)
    results = {name: median_seconds(command, args.runs) for name, command in COMMANDS.items()}
    peer = results['python -c "import tensorflow"']
    width = max(len(name) for name in results)
    print(f"{'command':{width}s} {'median s':>9s} {'vs TF import':>13s}")
    for name, seconds in results.items():
        print(f"{name:{width}s} {seconds:9.3f} {seconds / peer:12.1%}")


if __name__ == "__main__":
    main()
