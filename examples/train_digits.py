"""Train a small VGG on real handwritten digits with `vggspec train`, on a CPU, in about
a minute: scikit-learn's bundled digits (1,797 8x8 greys, shipped inside scikit-learn,
nothing downloaded) are written as a folder of class folders scaled to 32x32, then
trained with examples/digits.yaml and the validation accuracy printed.

    pip install '.[examples]'
    python examples/train_digits.py [--out runs/digits] [--epochs N]

The run folder ends up with best.keras, curves.png, confusion.png, metrics.json, ...
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def write_digits(folder: Path) -> int:
    """scikit-learn's digits as folder/<digit>/<n>.png, 32x32 8-bit grey (0..16 scaled to
    0..255, bilinear); returns the number of images."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        grey = Image.fromarray(np.round(image * 255.0 / 16.0).astype(np.uint8))
        target = folder / str(label)
        target.mkdir(parents=True, exist_ok=True)
        grey.resize((32, 32), Image.Resampling.BILINEAR).save(target / f"{index:04d}.png")
    return len(digits.target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/digits", help="the run folder (new)")
    parser.add_argument("--epochs", type=int, help="override the spec's 12 epochs")
    args = parser.parse_args()
    out = Path(args.out)
    images = out.with_name(out.name + "-images")
    if not images.exists():
        print(f"wrote {write_digits(images):,} digits to {images}/")
    command = [sys.executable, "-m", "vggspec", "train", str(HERE / "digits.yaml"),
               "--data", str(images), "--out", str(out)]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    shown = [os.path.relpath(part) if part == str(HERE / "digits.yaml") else part
             for part in command[3:]]
    print("$", shlex.join(["vggspec", *shown]), flush=True)
    finished = subprocess.run(command)
    if finished.returncode != 0:
        return finished.returncode
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"validation accuracy {metrics['accuracy']:.4f} on {metrics['images']} digits "
          f"(best epoch {metrics['epoch']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
