"""Reproduce the Result section of the VGG16-from-scratch write-up, end to end.

    python examples/reproduce_writeup.py [--weights vgg16_weights_tf_dim_ordering_tf_kernels.h5]
                                         [--out examples/output/writeup]

Reads the photo that ships with matplotlib (Grace Hopper), runs it through VGG16 built
from archs/vgg16.yaml, prints the shape after each of the five blocks and writes the
input, one grid per block and an overview. Without --weights the network is untrained
(nothing is downloaded here), so the maps show edges and colours passed through random
filters; with the published Keras ImageNet weights file they show learned features.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib import cbook

import vggspec
from vggspec.builder import build_model, feature_model
from vggspec.features import compiled, load_image, preprocess
from vggspec.render import render_overview, shape_text, write_grid, write_png

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="Keras VGG16 weights file (legacy .h5 or .keras)")
    parser.add_argument("--out", default=str(ROOT / "examples" / "output" / "writeup"))
    args = parser.parse_args()

    spec = vggspec.load_spec(ROOT / "archs" / "vgg16.yaml")
    height, width, channels = spec.input_shape
    photo_path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    photo = load_image(photo_path, channels, (height, width), resize="crop")

    model = build_model(spec, weights=args.weights)
    features = compiled(feature_model(model))(preprocess(photo[None], "caffe"))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_png(photo.astype("uint8"), out / "input.png")
    print("Input image:", photo.shape)
    for tap, maps in features.items():
        print(f"Feature map after {tap}: TensorShape({list(maps.shape)})")
        write_grid(maps[0], out / f"{tap}.png", f"{tap}  {shape_text(maps.shape[1:])}")
    write_png(render_overview(photo, {tap: maps[0] for tap, maps in features.items()}),
              out / "overview.png")
    print(f"pictures in {out}/")


if __name__ == "__main__":
    main()
