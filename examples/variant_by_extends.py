"""Define a variant in a few YAML lines with `extends`, compare it with its base, and
draw both architectures. No TensorFlow is imported.

    python examples/variant_by_extends.py [--out examples/output/variant]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import vggspec
from vggspec.diagram import write_diagram

ROOT = Path(__file__).resolve().parent.parent
VARIANT = """\
# VGG16 for 64x64 images: batch norm, 1x1 convs closing blocks 4 and 5, and a
# global-average-pooling head with no dense layers.
extends: vgg16
name: vgg16_small_gap
input: {shape: [64, 64, 3]}
defaults: {batch_norm: true}
blocks:
  - [64, 64, max]
  - [128, 128, max]
  - [256, 256, 256, max]
  - [512, 512, {filters: 512, kernel: 1}, max]
  - [512, 512, {filters: 512, kernel: 1}, none]
head: {type: global_avg}
"""


def side_by_side(left: str, right: str, gap: int = 4) -> str:
    left_lines, right_lines = left.splitlines(), right.splitlines()
    width = max(map(len, left_lines)) + gap
    rows = max(len(left_lines), len(right_lines))
    left_lines += [""] * (rows - len(left_lines))
    right_lines += [""] * (rows - len(right_lines))
    return "\n".join(f"{a:<{width}}{b}" for a, b in zip(left_lines, right_lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "examples" / "output" / "variant"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variant_path = out / "vgg16_small_gap.yaml"
    variant_path.write_text(VARIANT)

    base = vggspec.plan(ROOT / "archs" / "vgg16.yaml")
    variant = vggspec.plan(variant_path)
    print(side_by_side(str(base), str(variant)))
    for layout in (base, variant):
        print("wrote", write_diagram(layout, out / f"{layout.spec.name}.png"))


if __name__ == "__main__":
    main()
