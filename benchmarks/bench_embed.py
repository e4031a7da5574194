"""`vggspec embed` end to end against the compiled model alone, and the decode rate.

    python benchmarks/bench_embed.py [--images 96] [--batch 16] [--repeats 3] [--size 1024]

All in this process, on JPEG variations of the photo that ships with matplotlib, scaled
so their longer side is --size pixels (a typical camera or web image is larger than the
224x224 input):

1. images/s of `embed` (VGG16 to block5, average-pooled: decoding in threads, batches,
   the compiled call, pooling, writing shards) against the same compiled feature model
   on the same images already decoded and preprocessed. Both whole (building the model
   and tracing its call included, about 2 s) and from the end of the first batch on.
   Medians of --repeats runs, alternating. Target (issue 12): at least 0.9x.
2. Decoding alone, one thread: images/s with Pillow's JPEG draft mode (embed's
   default) and without it (features' way).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench_features import make_images  # noqa: E402
from vggspec import load_spec  # noqa: E402
from vggspec.builder import feature_model  # noqa: E402
from vggspec.embed import embed  # noqa: E402
from vggspec.features import compiled, load_image, preprocess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def scaled(paths: list[Path], size: int) -> list[Path]:
    for path in paths:
        with Image.open(path) as image:
            factor = size / max(image.size)
            image.resize((round(image.width * factor), round(image.height * factor)),
                         Image.Resampling.BILINEAR).save(path, quality=90)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    spec = load_spec(ROOT / "archs" / "vgg16.yaml")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        (work / "images").mkdir()
        files = scaled(make_images(work / "images", args.images), args.size)
        weights = work / "vgg16.weights.h5"
        model = feature_model(spec, ["block5"])
        model.save_weights(weights)
        run = compiled(model)
        batches = [preprocess(np.stack([load_image(f, 3, (224, 224), draft=True)
                                        for f in files[start:start + args.batch]]), "caffe")
                   for start in range(0, len(files), args.batch)]
        run(batches[0])  # trace
        ours, steady, alone = [], [], []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            for batch in batches:
                maps = run(batch)["block5"]
                maps.mean(axis=(1, 2))
            alone.append(len(files) / (time.perf_counter() - start))
            marks: list[tuple[float, int]] = []
            start = time.perf_counter()
            embed(spec, files, work / f"out{repeat}", tap="block5", weights=weights,
                  batch_size=args.batch,
                  progress=lambda done, total: marks.append((time.perf_counter(), done)))
            ours.append(len(files) / (time.perf_counter() - start))
            # From the first batch's end on: no model building or tracing.
            steady.append((marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]))
        decode = {}
        for draft in (True, False):
            start = time.perf_counter()
            for path in files:
                load_image(path, 3, (224, 224), draft=draft)
            decode[draft] = len(files) / (time.perf_counter() - start)
    a, b, c = statistics.median(ours), statistics.median(alone), statistics.median(steady)
    print(f"{args.images} JPEGs, longer side {args.size}, VGG16 to block5 (224x224), "
          f"batch {args.batch}, float32, {args.repeats} repeats (medians)")
    print(f"vggspec embed, end to end:      {a:7.1f} images/s (model build and tracing "
          f"included)")
    print(f"vggspec embed, after batch 1:   {c:7.1f} images/s (decode to written shard)")
    print(f"compiled model alone:           {b:7.1f} images/s")
    print(f"ratio, end to end:              {a / b:7.3f}x")
    print(f"ratio, after batch 1:           {c / b:7.3f}x  (target >= 0.9)")
    print(f"decoding, one thread, draft:    {decode[True]:7.1f} images/s")
    print(f"decoding, one thread, full:     {decode[False]:7.1f} images/s")


if __name__ == "__main__":
    main()
