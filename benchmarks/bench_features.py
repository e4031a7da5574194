"""Rendering time and `vggspec features` throughput against the feature model alone.

    python benchmarks/bench_features.py [--images 64] [--batch 16] [--repeats 3]
                                        [--render-only]

1. Rendering the five block grids and the overview of one VGG16 image (224x224): the
   median time to colour and write all six PNGs. Target (issue 4): under 0.5 s. Then
   the same six as SVG and as PDF (text kept as text), for the record.
2. A folder of images at one batch size, all in this process: images/s of the whole
   `extract_features` run (reading, preprocessing, inference, writing) against the
   feature model's own compiled call on the same preprocessed batches. Targets: at
   least 0.5x with PNGs, at least 0.9x with arrays only (--npz --no-png).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from matplotlib import cbook  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from vggspec.builder import build_model, feature_model  # noqa: E402
from vggspec.features import compiled, load_image, preprocess  # noqa: E402
from vggspec.pipeline import extract_features  # noqa: E402
from vggspec.render import (overview_picture, render_grid, render_overview,  # noqa: E402
                            write_grid, write_picture, write_png)

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "archs" / "vgg16.yaml"


def make_images(folder: Path, count: int) -> list[Path]:
    """Variations of the photo that ships with matplotlib: crops, flips, sizes."""
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    paths = []
    for index in range(count):
        image = photo.crop((index % 7 * 8, index % 5 * 8, photo.width - index % 3 * 10,
                            photo.height - index % 4 * 10))
        if index % 2:
            image = ImageOps.mirror(image)
        path = folder / f"photo{index:03d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--render-only", action="store_true",
                        help="time the pictures only (part 1)")
    args = parser.parse_args()

    model = build_model(SPEC)
    run = compiled(feature_model(model))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "photos").mkdir()
        images = make_images(scratch / "photos", args.images)
        photo = load_image(images[0], 3, (224, 224))
        maps = {tap: value[0] for tap, value in run(preprocess(photo[None])).items()}
        times = []
        for repeat in range(max(5, args.repeats)):
            started = time.perf_counter()
            for tap, fmap in maps.items():
                write_png(render_grid(fmap, tap), scratch / f"{tap}.png")
            write_png(render_overview(photo, maps), scratch / "overview.png")
            times.append(time.perf_counter() - started)
        print(f"render 5 grids + overview (VGG16, one image): median "
              f"{statistics.median(times):.3f} s (target < 0.5 s)")
        for kind in ("svg", "pdf"):
            vector = []
            for repeat in range(3):
                started = time.perf_counter()
                for tap, fmap in maps.items():
                    write_grid(fmap, scratch / f"{tap}.{kind}", tap)
                write_picture(overview_picture(photo, maps), scratch / f"overview.{kind}")
                vector.append(time.perf_counter() - started)
            print(f"the same six pictures as {kind.upper()}: median "
                  f"{statistics.median(vector):.3f} s")
        if args.render_only:
            return

        # The peer: the feature model alone on the same preprocessed batches.
        batches = [preprocess(np.stack([load_image(p, 3, (224, 224))
                                        for p in images[i:i + args.batch]]))
                   for i in range(0, len(images), args.batch)]
        run(batches[0])  # warm up the compiled call for this batch size

        def model_only() -> float:
            started = time.perf_counter()
            for batch in batches:
                run(batch)
            return len(images) / (time.perf_counter() - started)

        def end_to_end(**options) -> float:
            out = Path(tempfile.mkdtemp(dir=scratch))
            started = time.perf_counter()
            extract_features(SPEC, [scratch / "photos"], out, batch_size=args.batch, **options)
            seconds = time.perf_counter() - started
            shutil.rmtree(out)  # every run starts with the same free disk and page cache
            return len(images) / seconds

        # extract_features builds its own model each run; time that build too, as a user
        # pays it, but warm Keras once first.
        end_to_end(png=False, npz=True)
        for label, options, target in (("PNGs", {}, 0.5),
                                       ("--npz only", {"png": False, "npz": True}, 0.9)):
            ours, peer = [], []
            for _ in range(args.repeats):
                peer.append(model_only())
                ours.append(end_to_end(**options))
            ours_median, peer_median = statistics.median(ours), statistics.median(peer)
            print(f"features {label}, {args.images} images at batch {args.batch}: "
                  f"{ours_median:.2f} img/s vs model alone {peer_median:.2f} img/s, ratio "
                  f"{ours_median / peer_median:.2f}x (target >= {target}x)")


if __name__ == "__main__":
    main()
