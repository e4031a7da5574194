"""Images in, feature maps out: reading and preparing images, and running a feature model.

    image file --load_image--> HxWxC float32 (0..255) --preprocess--> model input
    feature model --compiled call--> {tap: array}

Pillow only until inference; TensorFlow is imported by the functions that run models.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ._files import check_regular, open_regular
from .errors import InputError, UsageError, clip, printable

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pbm", ".jfif")
RESIZE_POLICIES = ("crop", "resize")
PREPROCESSING = ("caffe", "torch", "tf", "none")
# The ImageNet means in BGR order that the Keras VGG weights were trained with.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


class ImageWarning(UserWarning):
    """Something about an image the user should know, that did not stop it being used."""


def list_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders into the image files in them (sorted; by file name ending); a file
    named on its own is taken whatever its ending. Only regular files are taken, since
    reading a FIFO, socket or device could hang or never end: one named on its own is
    refused, one inside a folder is skipped. Raises InputError for a missing path, a
    named file that is not a regular file, or a folder that has no images or cannot be
    read.

    >>> list_images(["photos", "extra.jpg"])  # photos/ holds a.jpg, b.png and notes.txt
    [PosixPath('photos/a.jpg'), PosixPath('photos/b.png'), PosixPath('extra.jpg')]
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            try:
                inside = sorted(p for p in path.iterdir()
                                if p.suffix.lower() in IMAGE_SUFFIXES and _readable(p))
            except OSError as error:
                raise InputError(f"{path}: cannot read the folder: "
                                 f"{error.strerror or error}") from None
            if not inside:
                raise InputError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
            found += inside
        else:
            found.append(check_regular(path, "image"))
    return found


def _readable(path: Path) -> bool:
    """A regular file that check_regular would take (not a link into /proc, a FIFO...)."""
    try:
        check_regular(path, "image")
    except InputError:
        return False
    return True


def load_image(path: str | os.PathLike, channels: int = 3,
               size: tuple[int | None, int | None] = (None, None),
               resize: str = "crop", warn: Callable[[str], None] | None = None,
               draft: bool = False) -> np.ndarray:
    """Read an image as a float32 array of shape (height, width, channels), 0..255.

    EXIF orientation is applied; any mode is converted to ``channels`` (alpha flattened
    onto white unless the spec keeps an alpha channel; 16-bit and float images scaled by
    their real range); animated images give their first frame, with an ImageWarning.
    ``size`` is the spec's (height, width) (None keeps the image's own); ``resize`` is
    ``crop`` (scale the shorter side, then cut the centre) or ``resize`` (stretch).
    One side fixed and the other open (``(None, 224)``): the image is scaled to the fixed
    side, keeping its proportions. Only a regular file is opened (Pillow reads the open
    file), so a FIFO or device fails at once instead of hanging. Raises InputError for
    anything that is not a readable image, or one over Pillow's decompression-bomb
    limit. ``warn`` receives warnings instead of the warnings module. ``draft``: let
    Pillow decode a large JPEG at a reduced scale (1/2, 1/4 or 1/8, never below the
    target size), several times faster; its pixels then differ slightly from a full
    decode (``vggspec embed`` uses it; ``features`` and ``train`` do not).

    >>> photo = get_sample_data("grace_hopper.jpg", asfileobj=False)
    >>> load_image(photo, 3, (224, 224)).shape
    (224, 224, 3)
    """
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with open_regular(path, "image") as handle, warnings.catch_warnings():
            # Pillow's notes on a hostile file ("Corrupt EXIF data", with its own source
            # lines) are not ours to print; the bomb warning is a refusal.
            warnings.filterwarnings("ignore", module=r"PIL\.")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                if getattr(image, "n_frames", 1) > 1:
                    message = f"{printable(str(path))}: animated image; using its first frame"
                    if warn:
                        warn(message)
                    else:
                        warnings.warn(message, ImageWarning, stacklevel=2)
                    image.seek(0)
                if draft and image.format == "JPEG" and None not in size:
                    # Either orientation: EXIF may turn the image after decoding.
                    side = max(size)
                    image.draft(None, (side, side))
                image.load()
                image = _to_channels(ImageOps.exif_transpose(image), channels)
    except InputError:  # from open_regular: missing, not a regular file, unreadable
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"{path}: image is larger than Pillow's decompression-bomb limit "
                         f"of {Image.MAX_IMAGE_PIXELS:,} pixels; refused") from None
    except Image.UnidentifiedImageError:
        kind = "an empty file" if path.stat().st_size == 0 else "not an image Pillow can read"
        raise InputError(f"{path}: {kind}") from None
    except Exception as error:  # noqa: BLE001  Pillow's decoders raise many kinds on a
        # damaged file (IndexError from a truncated GIF, TypeError or KeyError from a
        # TIFF): each is this image's problem, reported in one line.
        raise InputError(f"{path}: cannot read the image (truncated or corrupt?): "
                         f"{clip(str(error) or type(error).__name__, 200)}".splitlines()[0]
                         ) from None
    return _fit(image, size, resize)


def _to_channels(image, channels: int):
    """Any Pillow image -> an 8-bit image with the spec's channels."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # High bit depths: scale by the values actually present, never clip to 8 bits.
        grey = np.asarray(image, dtype=np.float32)
        low, high = float(grey.min()), float(grey.max())
        grey = (grey - low) / (high - low) * 255.0 if high > low else np.zeros_like(grey)
        image = Image.fromarray(grey.round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in ("1", "L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")  # CMYK, YCbCr, PA...
    if "A" in image.mode and channels not in (2, 4):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA")).convert(image.mode[:-1])
    return image.convert(_MODES[channels])


def _fit(image, size: tuple[int | None, int | None], resize: str) -> np.ndarray:
    """Resize an 8-bit image by the policy and return it as float32 (H, W, C)."""
    from PIL import Image, ImageOps

    height, width = size
    if height is not None and width is not None:
        if resize not in RESIZE_POLICIES:
            raise UsageError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, "
                             f"got {resize!r}")
        if resize == "crop":
            image = ImageOps.fit(image, (width, height), Image.Resampling.BILINEAR)
        elif image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
    elif height is not None or width is not None:
        # The network takes any size along the open side only.
        own_width, own_height = image.size
        scaled = ((max(1, round(own_width * height / own_height)), height)
                  if height is not None else
                  (width, max(1, round(own_height * width / own_width))))
        if scaled != image.size:
            image = image.resize(scaled, Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32)
    return array[..., None] if array.ndim == 2 else array


def preprocess(images: np.ndarray, mode: str = "caffe") -> np.ndarray:
    """Prepare images (..., H, W, C), 0..255, for the network.

    caffe: RGB to BGR and the ImageNet mean subtracted (what the Keras ImageNet VGG
    weights expect; 3 channels); torch: scaled to 0..1, then ImageNet mean and std
    (3 channels); tf: scaled to -1..1; none: unchanged.

    >>> preprocess(np.full((1, 1, 3), 255.0), "tf")
    array([[[1., 1., 1.]]], dtype=float32)
    """
    images = np.asarray(images, dtype=np.float32)
    check_preprocessing(mode, images.shape[-1])
    if mode == "caffe":
        return images[..., ::-1] - CAFFE_MEAN_BGR
    if mode == "torch":
        return (images / 255.0 - TORCH_MEAN) / TORCH_STD
    if mode == "tf":
        return images / 127.5 - 1.0
    return images


def check_preprocessing(mode: str, channels: int) -> None:
    """Refuse a preprocessing mode that does not exist or does not fit the channels."""
    if mode not in PREPROCESSING:
        raise UsageError(f"preprocess must be one of {', '.join(PREPROCESSING)}, got "
                         f"{mode!r}")
    if mode in ("caffe", "torch") and channels != 3:
        raise UsageError(f"{mode} preprocessing needs 3 channels, the spec has {channels}; "
                         f"use --preprocess tf or none")


def default_preprocessing(channels: int) -> str:
    """caffe for RGB specs (the Keras ImageNet convention), tf otherwise."""
    return "caffe" if channels == 3 else "tf"


def compiled(features_model):
    """A compiled call of a feature model: numpy batch in, {tap: numpy array} out, on
    whichever Keras backend runs (see vggspec.backends). Several times faster than
    ``model.predict`` for small batches."""
    from .backends import compiled_call

    return compiled_call(features_model)


def batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
