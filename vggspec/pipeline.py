"""`vggspec features` as a library call: images in, one folder of pictures per image out.

    images --load/preprocess--> batches --feature model--> {tap: maps} --render--> PNGs

Inference runs as a compiled call, batch after batch, while a small thread pool colours
and writes the previous batch's pictures. Every file is written to a temporary name and
renamed, so Ctrl-C or a failing image never leaves half a PNG behind.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import atomic_path, check_output_dir
from .errors import InputError
from .plan import DEFAULT_MAX_WEIGHT_BYTES
from .features import (batches, check_preprocessing, default_preprocessing, list_images,
                       load_image, preprocess)


@dataclass
class Report:
    """What a run did: images done (with their folders), images that failed and why,
    warnings (animated images), and each tap's shape for one image."""

    done: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tap_shapes: dict[str, tuple] = field(default_factory=dict)


def _folders(images: list[Path], out: Path) -> list[Path]:
    """out/<image stem>/, numbered where two images share a stem."""
    seen: dict[str, int] = {}
    folders = []
    for image in images:
        count = seen.get(image.stem, 0)
        seen[image.stem] = count + 1
        folders.append(out / (image.stem if count == 0 else f"{image.stem}_{count + 1}"))
    return folders


def _write_one(image: np.ndarray, maps: dict[str, np.ndarray], folder: Path, png: bool,
               npz: bool, max_channels: int | None, cmap: str) -> None:
    try:
        _write_files(image, maps, folder, png, npz, max_channels, cmap)
    except OSError as error:
        raise InputError(f"{folder}: cannot write: {error.strerror or error}") from None


def _write_files(image, maps, folder, png, npz, max_channels, cmap) -> None:
    from .render import render_overview, write_grid, write_png

    folder.mkdir(parents=True, exist_ok=True)
    if npz:
        with atomic_path(folder / "features.npz") as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, **maps)
    if png:
        for tap, fmap in maps.items():
            title = f"{tap}  {(1, *fmap.shape)}"
            if max_channels and fmap.shape[2] > max_channels:
                title += f"  first {max_channels} of {fmap.shape[2]} channels"
            write_grid(fmap, folder / f"{tap}.png", title, max_channels, cmap)
        write_png(render_overview(image, maps, cmap=cmap), folder / "overview.png")


def extract_features(spec_or_path, images: list[str | os.PathLike], out: str | os.PathLike,
                     *, weights=None, taps=None, batch_size: int = 16, resize: str = "crop",
                     preprocessing: str | None = None, png: bool = True, npz: bool = False,
                     max_channels: int | None = None, cmap: str = "viridis",
                     progress: Callable[[int, int], None] | None = None,
                     max_weight_bytes: int | None = DEFAULT_MAX_WEIGHT_BYTES) -> Report:
    """Write feature-map pictures (and/or arrays) for each image to ``out/<stem>/``.

    Bad images are skipped and listed in the report's ``failed``; the rest are done.
    Raises SpecError, or InputError for an unusable spec, weights file, output folder
    or image list. On KeyboardInterrupt, the pictures already written are whole, and the
    exception carries ``report`` with what was done.

    >>> report = extract_features("archs/vgg16.yaml", ["photo.jpg"], "out")
    >>> report.done
    [(PosixPath('photo.jpg'), PosixPath('out/photo'))]
    """
    from .builder import as_plan, feature_model
    from .features import compiled

    files = list_images(images)
    out = check_output_dir(out)
    layout = as_plan(spec_or_path, max_weight_bytes)
    height, width, channels = layout.spec.input_shape
    preprocessing = preprocessing or default_preprocessing(channels)
    check_preprocessing(preprocessing, channels)
    report = Report()
    size = batch_size if height is not None and width is not None else 1
    folders = dict(zip(files, _folders(files, out)))
    groups = list(batches(files, size))

    def load(group: list[Path]):
        """Read one batch (in a helper thread, while the previous batch runs)."""
        loaded, failed, notes = [], [], []
        for path in group:
            try:
                loaded.append((path, load_image(path, channels, (height, width), resize,
                                                warn=notes.append)))
            except InputError as error:
                failed.append((path, str(error)))
        return loaded, failed, notes

    pending: list[tuple[Path, Future]] = []
    # Each waiting write holds one image's maps (6 MB for VGG16): bound how many wait.
    most_waiting = max(2 * size, 8)

    def collect(wait: bool) -> None:
        """Move finished writes (the oldest first, waiting for them if asked) to done."""
        while pending and (wait or pending[0][1].done() or len(pending) > most_waiting):
            path, future = pending.pop(0)
            future.result()
            report.done.append((path, folders[path]))

    writers, reader = ThreadPoolExecutor(max_workers=2), ThreadPoolExecutor(max_workers=1)
    finished = 0
    try:
        # The first batch is read while the model is built and its call traced.
        next_group = reader.submit(load, groups[0]) if groups else None
        run = compiled(feature_model(layout, taps, weights=weights, max_weight_bytes=None))
        for index, group in enumerate(groups):
            loaded, failed, notes = next_group.result()
            if index + 1 < len(groups):
                next_group = reader.submit(load, groups[index + 1])
            report.failed += failed
            report.warnings += notes
            if loaded:
                pixels = np.stack([array for _, array in loaded])
                maps = run(preprocess(pixels, preprocessing))
                if not report.tap_shapes:
                    report.tap_shapes = {tap: (1, *value.shape[1:])
                                         for tap, value in maps.items()}
                for position, (path, array) in enumerate(loaded):
                    one = {tap: value[position] for tap, value in maps.items()}
                    pending.append((path, writers.submit(_write_one, array, one,
                                                         folders[path], png, npz,
                                                         max_channels, cmap)))
            collect(wait=False)
            finished += len(group)
            if progress:
                progress(finished, len(files))
        collect(wait=True)
    except KeyboardInterrupt as interrupt:
        for _, future in pending:
            future.cancel()
        # Writes already under way finish whole (write then rename); count them as done.
        pending[:] = [(path, future) for path, future in pending if not future.cancelled()]
        try:
            collect(wait=True)
        except Exception:  # a write that failed while we stop is simply not done
            pass
        interrupt.report = report
        raise
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True, cancel_futures=True)
    order = {path: index for index, path in enumerate(files)}
    report.done.sort(key=lambda item: order[item[0]])
    return report
