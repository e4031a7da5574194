"""`vggspec features` as a library call: images in, one folder of pictures per image out.

    images --load/preprocess--> batches --feature model--> {tap: maps} --render--> PNGs

Inference runs as a compiled call, batch after batch, while a small thread pool colours
and writes the previous batch's pictures. Each image's files are written into a hidden
temporary folder inside the output folder (``.<name>.tmp-<hex>``) that is renamed into
place as the image's last step, so an image's folder is whole or absent: Ctrl-C or a
failing image never leaves half a folder behind, and the report lists exactly the
folders that were renamed into place.

Folder names come from the images' file names, made safe (``folder_names``): every
folder is a plain name directly inside the output folder, never hidden, and two images
never share one. The same file listed twice is processed once.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import secrets
import shutil
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import check_output_dir
from .errors import InputError, SpecError, printable
from .render import Style
from .plan import (DEFAULT_MAX_ACTIVATION_BYTES, DEFAULT_MAX_WEIGHT_BYTES, Plan, format_bytes,
                   plan_layers, smallest_input)
from .features import (batches, check_preprocessing, default_preprocessing, list_images,
                       load_image, preprocess)

# Folder names are cut to this many bytes of UTF-8, which leaves room, within the 255
# bytes most file systems allow, for a number and the temporary folder's dot and suffix.
MAX_FOLDER_NAME_BYTES = 100


@dataclass
class Report:
    """What a run did: images done (with their folders), images that failed and why,
    warnings (animated images, files listed twice), each tap's shape for one image, and
    how many distinct images the run had (a file listed twice counts once)."""

    done: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tap_shapes: dict[str, tuple] = field(default_factory=dict)
    images: int = 0


def safe_name(stem: str) -> str:
    """A folder name for an image's stem: letters, digits, ``-``, ``_``, ``.`` and spaces
    are kept and anything else (backslashes, control characters) becomes ``_``; no dot
    or space at either end, so never ``.``, ``..`` or hidden; ``image`` when nothing is
    left; at most MAX_FOLDER_NAME_BYTES bytes of UTF-8.

    >>> safe_name("..\\\\cat\\n"), safe_name("..")
    ('_cat_', 'image')
    """
    name = "".join(char if char.isalnum() or char in "-_. " else "_" for char in stem)
    name = name.strip(". ").encode()[:MAX_FOLDER_NAME_BYTES].decode("utf-8", "ignore")
    return name.strip(". ") or "image"


def folder_names(images: list[Path]) -> list[str]:
    """One folder name per image, all different: ``safe_name`` of its stem, and for an
    image whose name an earlier one took, that name numbered ``_2``, ``_3``... skipping
    every name that another image has as its own. Names are compared ignoring case, so
    they stay apart on case-insensitive file systems; the same list gives the same names.

    >>> folder_names([Path("a/cat.png"), Path("b/Cat.jpg"), Path("c/cat_2.png")])
    ['cat', 'Cat_3', 'cat_2']
    """
    natural = [safe_name(image.stem) for image in images]
    reserved = {name.casefold() for name in natural}
    taken: set[str] = set()
    names = []
    for name in natural:
        candidate, number = name, 1
        while candidate.casefold() in taken or (number > 1 and candidate.casefold() in reserved):
            number += 1
            candidate = f"{name}_{number}"
        taken.add(candidate.casefold())
        names.append(candidate)
    return names


def _unique(files: list[Path]) -> tuple[list[Path], list[str]]:
    """The files with repeats dropped (the same file: same device and inode, as
    os.path.samefile compares, so other spellings and links count), and a warning each."""
    first: dict[object, Path] = {}
    unique, notes = [], []
    for path in files:
        try:
            status = os.stat(path)
            key: object = (status.st_dev, status.st_ino)
        except OSError:  # gone since it was listed: loading it will say so
            key = os.path.abspath(path)
        if key not in first:
            first[key] = path
            unique.append(path)
        elif str(first[key]) == str(path):
            notes.append(printable(f"{path}: listed twice; processed once"))
        else:
            notes.append(printable(f"{path}: the same file as {first[key]}; processed once"))
    return unique, notes


def _activation_bytes(spec, height: int, width: int, layer_names) -> int | None:
    """float32 bytes of the outputs of the layers up to the last of ``layer_names`` for
    one image of this size; None when the image is too small for the spec."""
    sized = dataclasses.replace(spec, input_shape=(height, width, spec.input_shape[2]))
    layers, issues = plan_layers(sized)
    if issues:
        return None
    return Plan(sized, tuple(layers)).up_to(layer_names).activation_bytes


class _Outcome:
    """The report, shared with the writer threads. Its lock makes "check the stopping
    flag, rename the folder into place, record it done" one step, so once ``stop`` has
    returned no folder appears that the report does not list."""

    def __init__(self, files: list[Path]):
        self.report = Report(images=len(files))
        self.order = {path: index for index, path in enumerate(files)}
        self.lock = threading.Lock()
        self.stopping = False
        self.snapshot: Report | None = None

    def fail(self, path: Path, reason: str) -> None:
        with self.lock:
            if not self.stopping:
                self.report.failed.append((path, reason))

    def note(self, warnings: list[str]) -> None:
        with self.lock:
            self.report.warnings += warnings

    def finish(self, path: Path, temporary: Path, folder: Path) -> None:
        """Rename an image's temporary folder into place and record it done, or, once
        stopping, delete it."""
        old = None
        with self.lock:
            if not self.stopping:
                try:
                    old = _move_into_place(temporary, folder)
                    self.report.done.append((path, folder))
                    temporary = None
                except OSError as error:
                    self.report.failed.append((path, _cannot_write(path, folder, error)))
        # Deleting needs no lock: a stopped image's files, or the folder just replaced.
        for leftover in (temporary, old):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)

    def stop(self, under_way: list[Future] | tuple = ()) -> Report:
        """Let the writes ``under_way`` finish whole (those not started are cancelled; a
        second Ctrl-C cuts the wait short), then stop recording and return the report as
        it stands: the same report on every call. A write that finishes after this
        deletes its files, so the report keeps matching what is on disk."""
        for future in under_way:
            future.cancel()
        while self.snapshot is None:
            try:
                wait(under_way)
                with self.lock:
                    self.stopping = True
                    self.snapshot = self.sorted()
            except KeyboardInterrupt:  # Ctrl-C again: stop at once, still with the report
                under_way = ()
        return self.snapshot

    def sorted(self) -> Report:
        """A copy of the report, images in the order given."""
        def key(item):
            return self.order[item[0]]
        report = self.report
        return dataclasses.replace(report, done=sorted(report.done, key=key),
                                   failed=sorted(report.failed, key=key),
                                   warnings=list(report.warnings),
                                   tap_shapes=dict(report.tap_shapes))


def _temporary(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.tmp-{secrets.token_hex(4)}")


def _move_into_place(temporary: Path, folder: Path) -> Path | None:
    """Rename ``temporary`` to ``folder``. A folder already there (an earlier run's) is
    renamed aside and returned, to be deleted; anything else there is an error."""
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        os.rename(temporary, folder)
        return None
    if not stat.S_ISDIR(mode):  # a file, or a link that might lead outside the output
        raise OSError(errno.EEXIST, "something that is not a folder is in the way")
    old = _temporary(folder)
    os.rename(folder, old)
    try:
        os.rename(temporary, folder)
    except OSError:
        os.rename(old, folder)
        raise
    return old


def _cannot_write(path: Path, folder: Path, error: OSError) -> str:
    return printable(f"{path}: cannot write {folder}/: {error.strerror or error}")


def _write_image(outcome: _Outcome, path: Path, image: np.ndarray,
                 maps: dict[str, np.ndarray], folder: Path, png: bool, npz: bool,
                 max_channels: int | None, style: Style) -> None:
    """Write one image's files into a temporary folder, then hand it to ``outcome``."""
    temporary = _temporary(folder)
    try:
        temporary.mkdir()
        _write_files(image, maps, temporary, png, npz, max_channels, style)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        outcome.fail(path, _cannot_write(path, folder, error))
        return
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    outcome.finish(path, temporary, folder)


def _write_files(image, maps, folder, png, npz, max_channels, style: Style) -> None:
    from .render import overview_picture, shape_text, write_grid, write_picture

    if npz:
        with open(folder / "features.npz", "wb") as handle:
            np.savez(handle, **maps)
    if png:
        for tap, fmap in maps.items():
            title = f"{tap}  {shape_text(fmap.shape)}"
            if max_channels and fmap.shape[2] > max_channels:
                title += f"  first {max_channels} of {fmap.shape[2]} channels"
            write_grid(fmap, folder / f"{tap}.{style.format}", title, max_channels,
                       style.cmap, style.theme, style.scale)
        write_picture(overview_picture(image, maps, cmap=style.cmap, theme=style.theme),
                      folder / f"overview.{style.format}")


def _size_check(layout: Plan, taps, limit: int | None) -> Callable[[int, int], str | None]:
    """A function of an input's height and width that says why the feature model cannot
    take it (too small for the spec, or activations over ``limit``), or returns None."""
    smallest = smallest_input(layout.spec)
    last = list(layout.tap_layers(taps).values())
    known: dict[tuple[int, int], str | None] = {}

    def problem(height: int, width: int) -> str | None:
        if (height, width) not in known:
            needed = (None if height < smallest or width < smallest else
                      _activation_bytes(layout.spec, height, width, last))
            if needed is None:
                known[height, width] = f"this spec needs at least {smallest}x{smallest}"
            elif limit is not None and needed > limit:
                known[height, width] = (
                    f"its activations would need {format_bytes(needed)} (float32), over "
                    f"the limit of {format_bytes(limit)}; raise the limit with "
                    f"--max-activation-gib if this is meant")
            else:
                known[height, width] = None
        return known[height, width]

    return problem


def extract_features(spec_or_path, images: list[str | os.PathLike], out: str | os.PathLike,
                     *, weights=None, taps=None, batch_size: int = 16, resize: str = "crop",
                     preprocessing: str | None = None, png: bool = True, npz: bool = False,
                     max_channels: int | None = None, cmap: str = "viridis",
                     progress: Callable[[int, int], None] | None = None,
                     max_weight_bytes: int | None = DEFAULT_MAX_WEIGHT_BYTES,
                     max_activation_bytes: int | None = DEFAULT_MAX_ACTIVATION_BYTES,
                     precision: str = "float32", style: Style | None = None) -> Report:
    """Write feature-map pictures (and/or arrays) for each image to ``out/<name>/``.

    ``<name>`` is the image's stem made safe and numbered where images share it (see
    ``folder_names``); a folder left by an earlier run is replaced. The same file listed
    twice is processed once, with a warning. Bad images are skipped and listed in the
    report's ``failed``, with images too small for the spec, images (with an open input
    size) whose float32 activations would need more than ``max_activation_bytes`` (None
    for no limit), and images whose folder cannot be written; the rest are done.
    Raises SpecError (also for a fixed input size over ``max_activation_bytes``), or
    InputError for an unusable spec, weights file, output folder or image list. On
    KeyboardInterrupt, images not yet being written are dropped and those being written
    finish (a second Ctrl-C drops them too); the exception carries ``report``, whose
    ``done`` lists exactly the image folders in place. ``precision``: float32, or
    computation in bfloat16 or float16 (float32 weights; see vggspec.backends).
    ``style``: the pictures' colour map, theme, scale and format (vggspec.render.Style;
    ``cmap`` alone is a shorthand for ``Style(cmap=...)``).

    >>> report = extract_features("archs/vgg11.yaml", ["extra.jpg"], "out")
    >>> report.done
    [(PosixPath('extra.jpg'), PosixPath('out/extra'))]
    """
    from .backends import precision_policy
    from .builder import as_plan, feature_model
    from .features import compiled

    if style is not None and cmap != "viridis":
        raise ValueError("give the colour map inside style (Style(cmap=...)), not both")
    style = style or Style(cmap=cmap)
    files, repeats = _unique(list_images(images))
    out = check_output_dir(out)
    layout = as_plan(spec_or_path, max_weight_bytes)
    height, width, channels = layout.spec.input_shape
    preprocessing = preprocessing or default_preprocessing(channels)
    check_preprocessing(preprocessing, channels)
    size_problem = _size_check(layout, taps, max_activation_bytes)
    fixed = height is not None and width is not None
    problem = size_problem(height, width) if fixed else None
    if problem:  # every image would fail alike
        raise SpecError([layout.spec.issue("$.input.shape",
                                           f"the input is {height}x{width}; {problem}")])
    outcome = _Outcome(files)
    outcome.note(repeats)
    report = outcome.report
    size = batch_size if fixed else 1
    # With one side fixed, images are scaled to it, so a size in a message says so.
    scaled = ""
    if height is not None and width is None:
        scaled = f", scaled to the spec's height of {height}"
    elif width is not None and height is None:
        scaled = f", scaled to the spec's width of {width}"
    folders = {path: out / name for path, name in zip(files, folder_names(files))}
    groups = list(batches(files, size))

    def load(group: list[Path]):
        """Read one batch (in a helper thread, while the previous batch runs)."""
        loaded, failed, notes = [], [], []
        for path in group:
            try:
                array = load_image(path, channels, (height, width), resize, warn=notes.append)
            except InputError as error:
                failed.append((path, str(error)))
                continue
            problem = None if fixed else size_problem(*array.shape[:2])
            if problem:
                shape = "x".join(map(str, array.shape[:2]))
                failed.append((path, str(InputError(
                    f"{path}: image is {shape} (height x width{scaled}); {problem}"))))
            else:
                loaded.append((path, array))
        return loaded, failed, notes

    pending: list[Future] = []
    # Each waiting write holds one image's maps (6 MB for VGG16): bound how many wait.
    most_waiting = max(2 * size, 8)

    def collect(block: bool) -> None:
        """Drop finished writes (the oldest first, waiting for them if asked); a write
        records its own outcome, so this only surfaces a writer's unexpected error."""
        while pending and (block or pending[0].done() or len(pending) > most_waiting):
            pending[0].result()  # still listed while waited for, so Ctrl-C waits for it
            pending.pop(0)

    writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vggspec-writer")
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vggspec-reader")
    finished = 0
    try:
        # The first batch is read while the model is built and its call traced.
        next_group = reader.submit(load, groups[0]) if groups else None
        with precision_policy(precision):
            features = feature_model(layout, taps, weights=weights, max_weight_bytes=None)
        run = compiled(features)
        for index, group in enumerate(groups):
            loaded, failed, notes = next_group.result()
            if index + 1 < len(groups):
                next_group = reader.submit(load, groups[index + 1])
            for path, reason in failed:
                outcome.fail(path, reason)
            outcome.note(notes)
            if loaded:
                pixels = np.stack([array for _, array in loaded])
                maps = run(preprocess(pixels, preprocessing))
                if not report.tap_shapes:
                    report.tap_shapes = {tap: (1, *value.shape[1:])
                                         for tap, value in maps.items()}
                for position, (path, array) in enumerate(loaded):
                    one = {tap: value[position] for tap, value in maps.items()}
                    pending.append(writers.submit(_write_image, outcome, path, array, one,
                                                  folders[path], png, npz, max_channels,
                                                  style))
            collect(block=False)
            finished += len(group)
            if progress:
                progress(finished, len(files))
        collect(block=True)
    except KeyboardInterrupt as interrupt:
        interrupt.report = outcome.stop(pending)
        raise
    finally:
        for pool in (reader, writers):
            pool.shutdown(wait=False, cancel_futures=True)
        try:
            for pool in (reader, writers):
                pool.shutdown(wait=True)
        except KeyboardInterrupt as again:  # Ctrl-C while waiting: the same true report
            again.report = outcome.stop()
            raise
    return outcome.sorted()
