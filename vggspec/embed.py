"""`vggspec embed`: one feature vector per image, for image sets too large for pictures.

    images --decode (worker threads)--> batches --compiled tap call--> pooled vectors
    pooled vectors --shards--> OUT/shard-NNNNN.npy + OUT/shard-NNNNN.paths

Output: a folder holding ``embed.json`` (what was computed: spec, tap, pooling, vector
length, preprocessing, weights) and shards. Each shard is two files: ``.npy``, a float32
array of shape (rows, length) that ``numpy.load(..., mmap_mode="r")`` maps without
reading, and ``.paths``, one JSON string per line, the image of each row. A shard's
``.npy`` is renamed into place first and its ``.paths`` last: a shard exists once its
``.paths`` does, so Ctrl-C or a crash loses at most the shard being written, and a
rerun with the same settings skips every image already in a shard. ``read_embeddings``
reads them all back.

Why ``.npy`` and not Parquet: no new dependency (Parquet needs pyarrow, about 40 MB),
the vectors map straight into memory for nearest-neighbour search or training a probe,
and any language with a NumPy reader takes them. The paths file is plain text.

Images are read by a pool of threads (Pillow releases the GIL while it decodes), in
Pillow's JPEG draft mode when an image is at least twice the input size, and always a
few batches ahead of the model, so decoding and computing overlap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ._files import atomic_path, check_output_dir
from .errors import InputError, UsageError, clip

POOLS = ("avg", "max", "none")
META = "embed.json"
SHARD = "shard-{:05d}"
DEFAULT_SHARD_ROWS = 10_000


@dataclass
class EmbedReport:
    """What an embed run did: ``written`` rows this run, ``skipped`` images already in a
    shard from an earlier run, ``failed`` (path, reason) for images that could not be
    read, ``shards`` written this run, ``length`` of each vector."""

    written: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    shards: list[Path] = field(default_factory=list)
    length: int = 0


def default_workers() -> int:
    """Decoding threads: one per core the process may use, at least two."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(2, cores)


SHARD_NAME = re.compile(r"shard-(\d{5,})\.(npy|paths)")


def shard_files(out: Path) -> list[tuple[Path, Path]]:
    """The complete shards in ``out`` (both files present), in order."""
    found = []
    for paths in sorted(out.glob("shard-*.paths")):
        vectors = paths.with_suffix(".npy")
        if SHARD_NAME.fullmatch(paths.name) and vectors.is_file():
            found.append((vectors, paths))
    return found


def _next_shard(out: Path) -> int:
    """One past the highest shard number in use by either file, complete or not, so a
    new shard never replaces an old one (a gap, a crash between the two renames)."""
    numbers = [int(match.group(1)) for entry in os.scandir(out)
               if (match := SHARD_NAME.fullmatch(entry.name))]
    return max(numbers, default=-1) + 1


def _read_paths(path: Path) -> list[str]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InputError(f"{path}: cannot read the shard's paths: {clip(str(error), 120)}"
                         ) from None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, str) or "\0" in row:
            raise InputError(f"{path}:{number}: not a path (a JSON string)")
    return rows


def _load_shard(vectors: Path, rows: int | None = None, length: int | None = None,
                mmap: bool = True) -> np.ndarray:
    """A shard's array, refused in one line unless it is float32 (rows, length)."""
    try:
        array = np.load(vectors, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{vectors}: not a shard (.npy) this module wrote: "
                         f"{clip(str(error), 120)}") from None
    shape = getattr(array, "shape", ())
    if array.dtype != np.float32 or len(shape) != 2 or (rows is not None and shape[0] != rows) \
            or (length is not None and shape[1] != length):
        raise InputError(f"{vectors}: holds {array.dtype} {shape}, not float32 rows of "
                         f"{length or 'one'} length" + (f" for its {rows} paths" if rows
                                                          is not None else ""))
    return array


def read_embeddings(out: str | os.PathLike, mmap: bool = True
                    ) -> tuple[list[str], np.ndarray]:
    """(paths, vectors) of every shard in ``out``, in shard order; the vectors are one
    array (N, length), memory-mapped shards joined.

    >>> paths, vectors = read_embeddings("embeddings")   # doctest: +SKIP
    >>> vectors.shape                                      # doctest: +SKIP
    (1797, 512)
    """
    out = Path(out)
    paths: list[str] = []
    arrays = []
    for vectors, names in shard_files(out):
        rows = _read_paths(names)
        arrays.append(_load_shard(vectors, len(rows), arrays[0].shape[1] if arrays else None,
                                  mmap))
        paths += rows
    if not arrays:
        raise InputError(f"{out}: holds no shards")
    return paths, np.concatenate(arrays) if len(arrays) > 1 else np.asarray(arrays[0])


def _settings(spec, tap: str, pool: str, preprocessing: str, weights, resize: str,
              precision: str) -> dict:
    """What an embed folder's vectors depend on. Weights are named by file, a published
    name ("imagenet") by the file it stands for, so both spellings match."""
    from .sources import resolve

    source = resolve(weights, spec.name, spec.head.type) if weights is not None else None
    name = source.file_name if source else \
        None if weights is None else _weights_identity(weights)
    network = spec.to_dict()
    for unused in ("train", "description"):  # the vectors do not depend on them
        network.pop(unused, None)
    return {"format": "vggspec.embed/1", "spec": network, "tap": tap, "pool": pool,
            "preprocess": preprocessing, "resize": resize, "precision": precision,
            "weights": name}


def _weights_identity(path) -> str:
    """A weights file by name and content: two files called best.weights.h5 differ."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:  # the loader names the problem, with the file
        return os.path.basename(str(path))
    return f"{os.path.basename(str(path))} sha256:{digest.hexdigest()[:16]}"


def _check_out(out: Path, settings: dict) -> set[str]:
    """The images already embedded in ``out`` (by real path), after checking that an
    earlier run there used the same settings."""
    meta = out / META
    if not meta.exists():
        if any(out.glob("shard-*")):
            raise InputError(f"{out}: holds shards but no {META}: not a vggspec embed "
                             f"folder, or a damaged one")
        return set()
    try:
        earlier = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InputError(f"{meta}: cannot read it: {clip(str(error), 120)}") from None
    if not isinstance(earlier, dict) or {k: v for k, v in earlier.items() if k != "length"} \
            != settings:
        raise InputError(f"{out}: holds embeddings made with other settings (see {META}); "
                         f"give --out another folder")
    length = earlier.get("length")
    done = set()
    for vectors, names in shard_files(out):
        rows = _read_paths(names)
        _load_shard(vectors, len(rows), length if isinstance(length, int) else None)
        done.update(os.path.realpath(path) for path in rows)
    return done


def check_destination(spec, out: str | os.PathLike, *, tap: str, pool: str = "avg",
                      weights=None, resize: str = "crop", preprocessing: str,
                      precision: str = "float32") -> set[str]:
    """The images already in ``out`` (by real path), checked without TensorFlow: the
    folder can be written, and an earlier run there used these same settings."""
    out = check_output_dir(out)
    return _check_out(out, _settings(spec, tap, pool, preprocessing, weights, resize,
                                     precision))


def _pooled(maps: np.ndarray, pool: str) -> np.ndarray:
    if pool == "avg":
        return maps.mean(axis=(1, 2))
    if pool == "max":
        return maps.max(axis=(1, 2))
    return maps.reshape(len(maps), -1)


def embed(spec_or_path, images: list[str | os.PathLike], out: str | os.PathLike, *,
          tap: str | None = None, pool: str = "avg", weights=None, batch_size: int = 32,
          shard_rows: int = DEFAULT_SHARD_ROWS, workers: int | None = None,
          resize: str = "crop", preprocessing: str | None = None, precision: str = "float32",
          draft: bool = True, progress: Callable[[int, int], None] | None = None
          ) -> EmbedReport:
    """Write one vector per image into sharded arrays in ``out`` (see the module
    docstring): the feature map at ``tap`` (default: the spec's last tap) pooled over
    height and width (``avg``, ``max``) or flattened (``none``). A rerun into the same
    folder with the same settings skips the images already there. Bad images are
    skipped and listed in the report. On Ctrl-C, the shards written stay (the
    KeyboardInterrupt carries ``report``). ``precision``: float32, or bfloat16 /
    float16 computation (Keras' mixed policies), never used unless asked.

    Raises SpecError, UsageError (a tap the network lacks, a pooling, batch or shard
    size out of range, ``none`` pooling with an open input size) or InputError (images,
    weights, an output folder of other settings).
    """
    from .builder import as_plan, feature_model
    from .features import (check_preprocessing, compiled, default_preprocessing, list_images,
                           load_image, preprocess)
    from .pipeline import _unique
    from .plan import DEFAULT_MAX_WEIGHT_BYTES

    if pool not in POOLS:
        raise UsageError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if batch_size < 1 or shard_rows < 1:
        raise UsageError("batch and shard sizes must be at least 1")
    layout = as_plan(spec_or_path, DEFAULT_MAX_WEIGHT_BYTES)
    spec = layout.spec
    tap = tap or spec.taps[-1]
    layout.tap_layers([tap])  # a tap the network lacks: UsageError now, not after loading
    height, width, channels = spec.input_shape
    if height is None or width is None:
        if pool == "none":
            raise UsageError("--pool none needs a fixed input size: an open size gives "
                             "vectors of different lengths")
        batch_size = 1
    preprocessing = preprocessing or default_preprocessing(channels)
    check_preprocessing(preprocessing, channels)
    files, _ = _unique(list_images(images))
    settings = _settings(spec, tap, pool, preprocessing, weights, resize, precision)
    done = check_destination(spec, out, tap=tap, pool=pool, weights=weights, resize=resize,
                             preprocessing=preprocessing, precision=precision)
    out = Path(out)
    todo = [path for path in files if os.path.realpath(path) not in done]
    report = EmbedReport(skipped=len(files) - len(todo))
    if not todo:
        return report
    shard_number = _next_shard(out)

    from .backends import precision_policy

    with precision_policy(precision):
        run = compiled(feature_model(layout, [tap], weights=weights, max_weight_bytes=None))

    def read(path: Path):
        try:
            return path, load_image(path, channels, (height, width), resize,
                                    warn=lambda message: None, draft=draft), None
        except InputError as error:
            return path, None, str(error)

    pending_rows: list[np.ndarray] = []
    pending_paths: list[str] = []

    def flush(count: int) -> None:
        """Write the first ``count`` pending rows as the next shard."""
        nonlocal shard_number
        rows = np.concatenate(pending_rows).astype(np.float32, copy=False)
        stem = out / SHARD.format(shard_number)
        with atomic_path(stem.with_suffix(".npy")) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, rows[:count], allow_pickle=False)
        # The paths last: a shard counts once they are in place.
        with atomic_path(stem.with_suffix(".paths")) as temporary:
            temporary.write_text("".join(json.dumps(p) + "\n" for p in pending_paths[:count]),
                                 encoding="utf-8")
        report.shards.append(stem.with_suffix(".npy"))
        report.written += count
        shard_number += 1
        pending_rows[:] = [rows[count:]] if len(rows) > count else []
        del pending_paths[:count]

    pool_threads = ThreadPoolExecutor(max_workers=workers or default_workers(),
                                      thread_name_prefix="vggspec-decode")
    try:
        for count, group in enumerate(_decoded_batches(pool_threads, read, todo, batch_size)):
            loaded = []
            for path, array, problem in group:
                if problem is None:
                    loaded.append((path, array))
                else:
                    report.failed.append((path, problem))
            if loaded:
                pixels = np.stack([array for _, array in loaded])
                maps = next(iter(run(preprocess(pixels, preprocessing)).values()))
                vectors = _pooled(np.asarray(maps, dtype=np.float32), pool)
                if not report.length:
                    report.length = vectors.shape[1]
                    _write_meta(out, {**settings, "length": report.length})
                pending_rows.append(vectors)
                # Absolute: a rerun from another folder still finds them done.
                pending_paths.extend(os.path.abspath(path) for path, _ in loaded)
                while len(pending_paths) >= shard_rows:
                    flush(shard_rows)
            if progress:
                progress(min((count + 1) * batch_size, len(todo)), len(todo))
        if pending_paths:
            flush(len(pending_paths))
    except KeyboardInterrupt as interrupt:
        interrupt.report = report
        raise
    finally:
        pool_threads.shutdown(wait=False, cancel_futures=True)
    return report


def _write_meta(out: Path, meta: dict) -> None:
    with atomic_path(out / META) as temporary:
        temporary.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def _decoded_batches(threads: ThreadPoolExecutor, read, files: list[Path], batch_size: int,
                     ahead: int = 3) -> Iterator[list]:
    """Batches of read(path) results in order, with ``ahead`` batches being decoded
    while the caller computes on the current one."""
    groups = [files[start:start + batch_size] for start in range(0, len(files), batch_size)]
    queued: list[list] = []
    for group in groups[:ahead]:
        queued.append([threads.submit(read, path) for path in group])
    for index in range(len(groups)):
        current = queued.pop(0)
        following = index + ahead
        if following < len(groups):
            queued.append([threads.submit(read, path) for path in groups[following]])
        yield [future.result() for future in current]
