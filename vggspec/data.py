"""Image folders in, tf.data pipelines out: what `vggspec train` and `evaluate` read.

    folder of class folders --scan_folder--> ImageFolder (files, labels, class names)
    ImageFolder --split--> training and validation indices (seeded, per class)
    files --decode (tf.data, parallel)--> uint8 images, failures listed
    uint8 images --batches (seeded by epoch)--> augment --preprocess--> model input

The layout is the one Keras' ``image_dataset_from_directory`` and torchvision's
``ImageFolder`` read: one folder per class, named after it, the class order
alphabetical. Images are read with ``vggspec.features.load_image`` and prepared with the
same arithmetic as ``vggspec.features.preprocess``, so a network sees in training exactly
what ``vggspec features`` shows it.

Decoding runs in tf.data's parallel map, once: the decoded images are kept in memory as
uint8 (a 32x32 RGB image costs 3 KB, a 224x224 one 147 KB) when they fit under a limit,
so no epoch decodes anything. A set too large for that limit is refused before
training, naming the limit (streaming decoding is not built yet). The order of an epoch and its augmentation are drawn from (seed, epoch) by
TensorFlow's stateless random ops, so a resumed run sees exactly the batches an
uninterrupted run would have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import check_regular
from .errors import InputError, clip, listed, quote
from .features import IMAGE_SUFFIXES, PREPROCESSING, load_image

DEFAULT_MAX_CACHE_BYTES = 4 << 30


@dataclass(frozen=True)
class ImageFolder:
    """The images of a folder of class folders: ``files[i]`` is of class
    ``labels[i]``, the index of its folder's name in ``class_names`` (sorted)."""

    root: Path
    class_names: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]

    def counts(self) -> list[int]:
        """Images per class, in class order."""
        return np.bincount(np.asarray(self.labels, dtype=np.int64),
                           minlength=len(self.class_names)).tolist()


def scan_folder(path: str | os.PathLike, what: str = "data folder") -> ImageFolder:
    """The class folders under ``path`` and the images in each (found at any depth,
    by file name ending, regular files only; hidden files and folders are skipped, as
    are links that lead outside ``path``'s class folder into /proc or /sys).

    Raises InputError, one line naming the folder: missing, not a folder, images but no
    class folders, no class folders, a class folder with no images, or a single class.

    >>> scan_folder("digits").class_names   # doctest: +SKIP
    ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"{root}: no such {what}")
    if not root.is_dir():
        raise InputError(f"{root}: is not a folder; the {what} holds one folder of images "
                         f"per class")
    try:
        entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    except OSError as error:
        raise InputError(f"{root}: cannot read the folder: {error.strerror or error}") from None
    classes = [entry for entry in entries
               if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=True)]
    if not classes:
        loose = [e for e in entries if Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
        if loose:
            raise InputError(f"{root}: has images but no class folders: put each class's "
                             f"images in a folder named after the class ({root}/cat/1.jpg)")
        raise InputError(f"{root}: has no class folders (one folder of images per class)")
    files: list[Path] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, entry in enumerate(classes):
        found = _images_under(Path(entry.path))
        if not found:
            empty.append(entry.name)
        files += found
        labels += [label] * len(found)
    if empty:
        kind = "folder has" if len(empty) == 1 else "folders have"
        raise InputError(f"{root}: class {kind} no images ({', '.join(IMAGE_SUFFIXES)}): "
                         f"{listed(empty)}")
    if len(classes) == 1:
        raise InputError(f"{root}: only one class folder ({quote(classes[0].name)}); a "
                         f"classifier needs at least two")
    return ImageFolder(root, tuple(entry.name for entry in classes), tuple(files),
                       tuple(labels))


def _images_under(folder: Path) -> list[Path]:
    found = []
    for parent, folders, names in os.walk(folder, onerror=None, followlinks=False):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(parent, name)
            try:
                check_regular(path, "image")
            except InputError:
                continue
            found.append(path)
    return found


def split(folder: ImageFolder, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) into ``folder.files``: ``share`` of each
    class's images, rounded, drawn with ``seed``, held out for validation; every class
    keeps at least one training image and, when ``share`` > 0 and it has two or more,
    gives at least one to validation.

    >>> train, val = split(scan_folder("digits"), 0.2, seed=0)   # doctest: +SKIP
    >>> len(val), len(train)                                     # doctest: +SKIP
    (359, 1438)
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(folder.labels)
    train, val = [], []
    for label in range(len(folder.class_names)):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        held = 0 if share <= 0 or len(members) < 2 else \
            min(len(members) - 1, max(1, round(len(members) * share)))
        val.append(members[:held])
        train.append(members[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


@dataclass
class Decoded:
    """Images decoded once: ``images`` (N, H, W, C) uint8 of the files that could be
    read, ``kept`` their indices into the list given, ``failed`` (path, reason)."""

    images: np.ndarray
    kept: np.ndarray
    failed: list[tuple[Path, str]]


def _reader(files: list[Path], channels: int, size: tuple[int, int], resize: str,
            failed: list[tuple[Path, str]]) -> Callable:
    shape = (*size, channels)

    def read(index):
        path = files[int(index)]
        try:
            image = load_image(path, channels, size, resize, warn=lambda message: None)
        except InputError as error:
            failed.append((path, str(error)))
            return np.zeros(shape, np.uint8), False
        return image.astype(np.uint8), True

    return read


def image_bytes(count: int, size: tuple[int, int], channels: int) -> int:
    return count * size[0] * size[1] * channels


def check_cache(data, count: int, size: tuple[int, int], channels: int,
                max_bytes: int | None, tail: str = "") -> None:
    """Refuse ``count`` images whose decoded uint8 copies would take more than
    ``max_bytes`` (None: the default limit; 0: none), naming the folder and the flag."""
    limit = DEFAULT_MAX_CACHE_BYTES if max_bytes is None else max_bytes
    need = image_bytes(count, size, channels)
    if limit and need > limit:
        shape = "x".join(str(side) for side in (*size, channels))
        raise InputError(f"{data}: {count:,} images of {shape} need {need / 2**30:.1f} GiB "
                         f"decoded, over the {limit / 2**30:.1f} GiB limit (--max-cache-gib)"
                         f"{tail}")


def decode(files: list[Path], channels: int, size: tuple[int, int], resize: str = "crop",
           progress: Callable[[int], None] | None = None) -> Decoded:
    """Read every file with ``load_image`` in tf.data's parallel map (Pillow releases
    the GIL while it decodes), in order; a file that cannot be read is left out and
    listed, never a stop. ``progress`` is called with the count done so far."""
    from .backends import quiet_tensorflow

    tf = quiet_tensorflow()

    failed: list[tuple[Path, str]] = []
    read = _reader(list(files), channels, size, resize, failed)
    shape = (*size, channels)

    def load(index):
        image, ok = tf.numpy_function(read, [index], (tf.uint8, tf.bool), stateful=False)
        image.set_shape(shape)
        return index, image, ok

    dataset = (tf.data.Dataset.range(len(files)).map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                                      deterministic=True)
               .batch(256).prefetch(2))
    # One array, filled in place and compacted: memory stays at the images' own size.
    images = np.empty((len(files), *shape), np.uint8)
    kept = np.zeros(len(files), bool)
    for index, batch, ok in dataset.as_numpy_iterator():
        images[index] = batch
        kept[index] = ok
        if progress:
            progress(int(index[-1]) + 1)
    indices = np.flatnonzero(kept)
    if len(indices) < len(files):
        images = images[indices]
    return Decoded(images, indices, sorted(failed))


# --- tf.data pipelines --------------------------------------------------------------

def preprocess_tensor(images, mode: str):
    """``vggspec.features.preprocess`` in TensorFlow ops, for a float32 batch in 0..255:
    the same arithmetic in the same order, so the two agree to float32 rounding."""
    from .backends import quiet_tensorflow

    tf = quiet_tensorflow()

    from .features import CAFFE_MEAN_BGR, TORCH_MEAN, TORCH_STD

    if mode not in PREPROCESSING:
        raise ValueError(f"preprocess must be one of {', '.join(PREPROCESSING)}")
    if mode == "caffe":
        return tf.reverse(images, axis=[-1]) - tf.constant(CAFFE_MEAN_BGR)
    if mode == "torch":
        return (images / 255.0 - tf.constant(TORCH_MEAN)) / tf.constant(TORCH_STD)
    if mode == "tf":
        return images / 127.5 - 1.0
    return images


def augment_batch(images, seed, augment):
    """A float32 batch (B, H, W, C) with ``augment``'s random changes: a random resized
    crop (area share in [crop_scale, 1], aspect 3/4 to 4/3, bilinear, back to H x W) and
    a left-right flip, each image's draws from the stateless ``seed`` (two int64s)."""
    from .backends import quiet_tensorflow

    tf = quiet_tensorflow()

    shape = tf.shape(images)
    count, height, width = shape[0], shape[1], shape[2]
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    if augment.crop:
        draws = tf.random.stateless_uniform((count, 4), seeds[0], dtype=tf.float32)
        area = augment.crop_scale + (1.0 - augment.crop_scale) * draws[:, 0]
        log_ratio = (2.0 * draws[:, 1] - 1.0) * float(np.log(4.0 / 3.0))
        ratio = tf.exp(log_ratio)
        crop_h = tf.minimum(1.0, tf.sqrt(area / ratio))
        crop_w = tf.minimum(1.0, tf.sqrt(area * ratio))
        top = (1.0 - crop_h) * draws[:, 2]
        left = (1.0 - crop_w) * draws[:, 3]
        boxes = tf.stack([top, left, top + crop_h, left + crop_w], axis=1)
        images = tf.image.crop_and_resize(images, boxes, tf.range(count),
                                          tf.stack([height, width]))
    if augment.flip:
        flips = tf.random.stateless_uniform((count,), seeds[1]) < 0.5
        images = tf.where(flips[:, None, None, None], tf.reverse(images, axis=[2]), images)
    return images


def batches(images: np.ndarray, labels: np.ndarray, classes: int, batch_size: int,
            preprocess: str, *, seed: int | None = None, epoch=None, augment=None):
    """A tf.data pipeline of (model input, one-hot label) batches over in-memory uint8
    ``images``. With ``seed``, each epoch's order is a stateless shuffle drawn from
    (seed, epoch), where ``epoch`` is a tf.Variable the trainer sets as each epoch
    begins, so a resumed run sees the batches an uninterrupted run would; ``augment``
    (an Augment) then applies to each batch with draws from (seed, epoch, batch).
    Without ``seed``: the images in order, unchanged (validation, evaluation)."""
    from .backends import quiet_tensorflow

    tf = quiet_tensorflow()

    count = len(images)

    def gather(indices):
        return images[indices]

    def load(indices):
        batch = tf.numpy_function(gather, [indices], tf.uint8, stateful=False)
        batch.set_shape((None, *images.shape[1:]))
        label = tf.one_hot(tf.gather(tf.constant(labels, tf.int64), indices), classes)
        return indices, tf.cast(batch, tf.float32), label

    if seed is None:
        order = tf.data.Dataset.range(count)
    else:
        def shuffled(_):
            draw = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
            return tf.data.Dataset.from_tensor_slices(
                tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64),
                                                         seed=draw))
        order = tf.data.Dataset.range(1).flat_map(shuffled)
    steps = -(-count // batch_size)
    dataset = order.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    use_augment = seed is not None and augment is not None and (augment.flip or augment.crop)

    def prepare(indices, batch, label):
        if use_augment:
            draw = tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64),
                             indices[0]])
            batch = augment_batch(batch, draw, augment)
        return preprocess_tensor(batch, preprocess), label

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(
        tf.data.AUTOTUNE)


def describe_failures(failed: list[tuple[Path, str]]) -> list[str]:
    """One line per image that could not be read (its path is in the reason)."""
    return [clip(reason, 300) for _, reason in failed]
