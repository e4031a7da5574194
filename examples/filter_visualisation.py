"""Keras' example "Visualizing what convnets learn", end to end, on VGG16 (the network
Chollet's original version used): for each of the first filters of a conv layer, grow
the input that excites it most by gradient ascent from grey noise, then stitch the
patterns into one numbered grid.

    python examples/filter_visualisation.py [--weights imagenet] [--layer block3_conv1]
        [--count 16] [--out filters.png]

With ImageNet weights (downloaded once, 58 MB for the conv base), the middle layers show
stripes, grids and textures; the default untrained, seeded network shows the mechanics.
The same seed gives the same picture.
"""

from __future__ import annotations

import argparse
import time

import vggspec
from vggspec.builder import build_model
from vggspec.filters import filter_patterns
from vggspec.render import tiles_picture, write_picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="imagenet, or a weights file (default: none)")
    parser.add_argument("--layer", default="block3_conv1")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="input side in pixels")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="filters.png", help=".png, .svg or .pdf")
    args = parser.parse_args()

    import keras

    keras.utils.set_random_seed(args.seed)  # the untrained weights, when no file is given
    # The conv base (so "imagenet" means Keras' 58 MB notop file), built only up to the
    # chosen layer.
    spec = vggspec.spec_from_text("extends: vgg16\nhead: {type: none}\n", file="<example>")
    model = build_model(vggspec.plan(spec).up_to([args.layer]), weights=args.weights)
    started = time.perf_counter()
    patterns = filter_patterns(model, args.layer, args.count, size=args.size,
                               steps=args.steps, seed=args.seed, preprocess="caffe")
    seconds = time.perf_counter() - started
    for number, before, after in zip(patterns.filters, patterns.initial_activation,
                                     patterns.activation):
        print(f"filter {number:4d}: mean response {before:10.4g} -> {after:10.4g}")
    title = f"vgg16 {args.layer}: filters 0-{args.count - 1}, {args.steps} steps"
    written = write_picture(tiles_picture(patterns.images, patterns.filters, title), args.out)
    print(f"wrote {written} ({len(patterns.filters)} filters in {seconds:.1f} s)")


if __name__ == "__main__":
    main()
