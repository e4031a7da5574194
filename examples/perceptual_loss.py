"""VGG16 as a perceptual-loss feature extractor, with conv taps.

    python examples/perceptual_loss.py [--weights vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5]

Builds only the conv base (`head: {type: none}`), taps the layers used by perceptual
and style losses (block1_conv2, block2_conv2, block3_conv3, block4_conv3) and compares
a photo with a blurred and a shifted copy of itself: the mean squared difference of the
features at each tap. Use the published ImageNet weights for meaningful numbers; the
default untrained network shows the mechanics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib import cbook
from PIL import Image, ImageFilter

import vggspec
from vggspec.builder import feature_model
from vggspec.features import compiled, load_image, preprocess

ROOT = Path(__file__).resolve().parent.parent
TAPS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="Keras VGG16 weights (the _notop file will do)")
    args = parser.parse_args()

    spec = vggspec.spec_from_text("extends: vgg16\nhead: {type: none}\n", file="<example>")
    extract = compiled(feature_model(spec, TAPS, weights=args.weights))

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    photo = load_image(path, 3, (224, 224))
    blurred = np.asarray(Image.fromarray(photo.astype("uint8")).filter(
        ImageFilter.GaussianBlur(3)), dtype="float32")
    shifted = np.roll(photo, 8, axis=1)
    features = extract(preprocess(np.stack([photo, blurred, shifted]), "caffe"))

    print(f"{'tap':14s} {'shape':>20s} {'blurred':>12s} {'shifted':>12s}")
    for tap in TAPS:
        maps = features[tap]
        blur_loss = float(np.mean((maps[0] - maps[1]) ** 2))
        shift_loss = float(np.mean((maps[0] - maps[2]) ** 2))
        print(f"{tap:14s} {str(maps.shape[1:]):>20s} {blur_loss:12.4g} {shift_loss:12.4g}")


if __name__ == "__main__":
    main()
