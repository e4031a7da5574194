"""Published ImageNet weights by name: one table of sources, fetched with Keras' get_file.

    "imagenet" | "torchvision" + spec name + head type --resolve--> Source
    Source --fetch (keras.utils.get_file)--> file in the Keras cache (KERAS_HOME/models)

Every fact in ``SOURCES`` is copied from its publisher's own code, not guessed:
- Keras' VGG16 and VGG19 files, URLs and md5 hashes: ``keras/src/applications/vgg16.py``
  and ``vgg19.py`` (Keras 3.15), which fetch them with ``cache_subdir="models"``; they
  expect "caffe" preprocessing (``imagenet_utils.preprocess_input(mode="caffe")``).
- torchvision's eight ``IMAGENET1K_V1`` files: ``torchvision/models/vgg.py`` (0.20);
  they expect "torch" preprocessing (``ImageClassification``: ImageNet mean and std).
  torchvision publishes no whole hash, only the first 8 hex digits of the file's
  sha256 in its name (``vgg16-397923af.pth``), which ``torch.hub`` checks with
  ``check_hash=True``; fetch checks the same prefix, so these files are checked by 32
  bits, the Keras files by md5's 128.

Downloads go through ``keras.utils.get_file``, into the cache Keras itself uses:
``$KERAS_HOME/models`` or ``~/.keras/models`` (Keras' own fallback, ``/tmp/.keras``,
when that folder cannot be written). A file already there is checked and used without
any network, so to work offline, copy the file there by hand. get_file's progress bar
and messages go to stderr here, so stdout stays the command's own.

Set ``VGGSPEC_WEIGHTS_MIRROR`` to a base address (``https://host/weights``) or a folder
(``/data/weights``, ``file:///data/weights``) holding the files under their own names,
and every file is fetched from there instead of its publisher; the hashes are the
same, so a mirror cannot hand over a different file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, UsageError, clip, quote

MIRROR_VARIABLE = "VGGSPEC_WEIGHTS_MIRROR"
CACHE_SUBDIR = "models"  # where keras.applications keeps these same files
MIRROR_SCHEMES = ("http", "https", "file")
HEAD_TYPES = ("dense", "global_avg", "global_max", "none")
HASH_CHUNK = 1 << 20
# Library text in a message (an HTTP reason, an OS error) is quoted at most this long.
MAX_REASON = 160

KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
TORCHVISION_BASE = "https://download.pytorch.org/models/"
KERAS_LICENCE = ("ported from the VGG authors' release under CC BY 4.0 "
                 "(https://creativecommons.org/licenses/by/4.0/), as Keras' docs state")
TORCHVISION_LICENCE = ("trained by torchvision (BSD-3-Clause code), which says its weights "
                       "may carry terms from the data they were trained on (ImageNet)")
# OSErrors that are the cache folder's fault, not the network's (no file name on them
# when a write fails part way).
_CACHE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG}
# torch.hub's HASH_REGEX: the hex digits between the last '-' and the '.' of a file name.
_TORCH_HASH = re.compile(r"-([a-f0-9]+)\.")


@dataclass(frozen=True)
class Source:
    """One published weights file.

    ``spec``: the shipped spec whose layers it fits. ``publisher``: "keras" or
    "torchvision". ``file_name``: its name in the cache, and on a mirror. ``url``: where
    its publisher serves it. ``hash_kind``: "md5" (the whole md5, checked by get_file)
    or "sha256-prefix" (the first digits of the sha256, as torch.hub checks them).
    ``layout``: "keras-h5" (keras.applications' legacy HDF5: a group per layer name) or
    "torch-state-dict" (a torch ``state_dict`` pickle, read with
    ``torch.load(weights_only=True)``). ``include_top``: whether it holds fc1, fc2 and
    predictions (1000 ImageNet classes). ``preprocessing``: the input the weights
    expect, a mode of ``vggspec.preprocess``. ``licence``: the terms as the publisher
    states them.
    """

    spec: str
    publisher: str
    file_name: str
    url: str
    hash: str
    hash_kind: str
    layout: str
    include_top: bool
    preprocessing: str
    licence: str

    def __post_init__(self):
        # A name get_file would refuse (a path) or resolve outside the cache folder.
        if (not self.file_name or self.file_name in (".", "..")
                or any(sep in self.file_name for sep in ("/", "\\", "\0"))):
            raise ValueError(f"a weights file name must be a plain name, got {self.file_name!r}")
        if self.hash_kind not in ("md5", "sha256-prefix"):
            raise ValueError(f"hash_kind must be 'md5' or 'sha256-prefix', got {self.hash_kind!r}")
        if not re.fullmatch(r"[0-9a-f]{32}" if self.hash_kind == "md5" else r"[0-9a-f]{1,64}",
                            self.hash):
            raise ValueError(f"{self.file_name}: not a {self.hash_kind} hash: {self.hash!r}")


def _keras(spec: str, include_top: bool, md5: str) -> Source:
    name = f"{spec}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return Source(spec=spec, publisher="keras", file_name=name,
                  url=f"{KERAS_BASE}{spec}/{name}", hash=md5, hash_kind="md5",
                  layout="keras-h5", include_top=include_top, preprocessing="caffe",
                  licence=KERAS_LICENCE)


def _torchvision(file_name: str) -> Source:
    spec, prefix = file_name.split("-")[0], _TORCH_HASH.search(file_name).group(1)
    return Source(spec=spec, publisher="torchvision", file_name=file_name,
                  url=TORCHVISION_BASE + file_name, hash=prefix, hash_kind="sha256-prefix",
                  layout="torch-state-dict", include_top=True, preprocessing="torch",
                  licence=TORCHVISION_LICENCE)


SOURCES: tuple[Source, ...] = (
    _keras("vgg16", True, "64373286793e3c8b2b4e3219cbf3544b"),
    _keras("vgg16", False, "6d6bbae143d832006294945121d1f1fc"),
    _keras("vgg19", True, "cbe5617147190e668d6c5d5026f83318"),
    _keras("vgg19", False, "253f8cb515780f3b799900260a226db6"),
    *(_torchvision(name) for name in (
        "vgg11-8a719046.pth", "vgg11_bn-6002323d.pth", "vgg13-19584684.pth",
        "vgg13_bn-abd245e5.pth", "vgg16-397923af.pth", "vgg16_bn-6c64b313.pth",
        "vgg19-dcbb9e9d.pth", "vgg19_bn-c79401a0.pth")),
)

# A weights name, and the publishers it stands for, in order of preference: "imagenet"
# takes Keras' own file where there is one (it loads by name, with no conversion), and
# torchvision's for the rest.
NAMES: dict[str, tuple[str, ...]] = {
    "imagenet": ("keras", "torchvision"),
    "torchvision": ("torchvision",),
}


def specs_with_weights(name: str) -> list[str]:
    """The shipped specs that ``name`` ("imagenet", "torchvision") has weights for."""
    return sorted({source.spec for source in SOURCES if source.publisher in NAMES[name]})


def resolve(name_or_path: str | os.PathLike, spec_name: str, head_type: str) -> Source | None:
    """The published file that a weights name stands for, for a spec; None when
    ``name_or_path`` is no such name (then it is a path; ``./imagenet`` is a file).

    "imagenet": Keras' file for vgg16 and vgg19 (with fc1, fc2 and predictions when the
    head is dense, without them otherwise), torchvision's for vgg11, vgg11_bn, vgg13,
    vgg13_bn, vgg16_bn and vgg19_bn. "torchvision": torchvision's, for all eight.
    Weights are found by the spec's name: a spec that extends vgg16 under another name
    gets none (give the file's path instead). Raises UsageError, one line, for a spec
    with no published weights of that name.

    >>> resolve("imagenet", "vgg16", "none").file_name
    'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
    """
    if not isinstance(name_or_path, str) or name_or_path not in NAMES:
        return None
    if head_type not in HEAD_TYPES:
        raise ValueError(f"head type must be one of {', '.join(HEAD_TYPES)}, got {head_type!r}")
    for publisher in NAMES[name_or_path]:
        files = [s for s in SOURCES if s.publisher == publisher and s.spec == spec_name]
        if files:
            # A publisher with one file (torchvision) has the top in it; the loader
            # takes what the model has.
            wanted = head_type == "dense"
            return next((s for s in files if s.include_top == wanted), files[0])
    raise UsageError(f"{quote(spec_name)} has no published {name_or_path} weights; "
                     f"{name_or_path} weights exist for the shipped specs "
                     f"{', '.join(specs_with_weights(name_or_path))} (found by the spec's "
                     f"name; for other weights, give a file's path)")


def origin(source: Source) -> str:
    """Where ``source`` is fetched from: its publisher's address, or, when
    VGGSPEC_WEIGHTS_MIRROR is set, the mirror's with the file name appended. Raises
    UsageError for a mirror that is not an http(s) or file address or an absolute folder.

    >>> origin(resolve("torchvision", "vgg11", "dense"))
    'https://download.pytorch.org/models/vgg11-8a719046.pth'
    """
    mirror = os.environ.get(MIRROR_VARIABLE, "")
    if not mirror:
        return source.url
    if os.path.isabs(mirror) and "://" not in mirror:
        mirror = Path(mirror).as_uri()
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme.lower() not in MIRROR_SCHEMES or (parts.scheme != "file" and not parts.netloc):
        raise UsageError(f"{MIRROR_VARIABLE} must be an http://, https:// or file:// address "
                         f"or an absolute folder holding the weights files, got {quote(mirror)}")
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(source.file_name)}"


def check_readable(source: Source) -> None:
    """Refuse, before anything is downloaded, a file this machine could not read:
    torchvision's pickles need PyTorch (they are only read with
    ``torch.load(weights_only=True)``), and a download of 500 MB to be told so after
    would waste the user's time."""
    import importlib.util

    if source.layout == "torch-state-dict" and importlib.util.find_spec("torch") is None:
        raise InputError(
            f"{source.spec}: torchvision publishes these weights as a PyTorch pickle "
            f"({source.file_name}), read only by torch.load(weights_only=True): install "
            f"torch, or convert the file to .safetensors elsewhere and pass its path")


def cache_path(source: Source) -> Path:
    """Where ``fetch`` keeps ``source``, and where to put the file by hand to work
    offline: ``$KERAS_HOME/models/<file name>``, else ``~/.keras/models/<file name>``
    (``/tmp/.keras/...`` where Keras falls back to it: that folder cannot be written)."""
    return _cache_root(create=False) / CACHE_SUBDIR / source.file_name


def _cache_root(create: bool) -> Path:
    """The Keras cache folder, chosen as get_file chooses it, from the environment now
    (Keras reads KERAS_HOME once, at import)."""
    if "KERAS_HOME" in os.environ:
        base = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    if create and base:
        # get_file falls back to /tmp/.keras for a folder that does not exist yet.
        with contextlib.suppress(OSError):
            os.makedirs(base, exist_ok=True)
    if base and (os.access(base, os.W_OK) or (not create and not os.path.exists(base))):
        return Path(base)
    return Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")


def fetch(source: Source) -> Path:
    """The path of ``source`` in the Keras cache, downloaded first (with
    ``keras.utils.get_file``) unless a copy that matches its hash is already there.

    Raises InputError, one line: when the file cannot be downloaded (naming the address
    and where to put the file by hand), when what arrived does not match the published
    hash (the file is removed), or when the cache cannot be written. UsageError for a
    bad VGGSPEC_WEIGHTS_MIRROR.

    >>> fetch(resolve("imagenet", "vgg16", "dense"))   # doctest: +SKIP
    PosixPath('/home/me/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5')
    """
    import keras

    address = origin(source)
    root = _cache_root(create=True)
    target = root / CACHE_SUBDIR / source.file_name
    prefix = source.hash if source.hash_kind == "sha256-prefix" else None
    found = target.is_file()
    checked = bool(prefix and found and _has_sha256_prefix(target, prefix))
    if prefix and found and not checked:
        # As get_file does for a cached file that fails its md5: fetch a fresh copy.
        _remove(target)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            path = keras.utils.get_file(
                fname=source.file_name, origin=address, cache_subdir=CACHE_SUBDIR,
                cache_dir=str(root), file_hash=None if prefix else source.hash,
                hash_algorithm="md5")
    except ValueError:
        if not target.exists():
            raise
        # get_file leaves a download that fails its hash in the cache.
        _remove(target)
        raise InputError(_mismatch(source, address, target)) from None
    except OSError as error:
        if error.filename is None and error.errno not in _CACHE_ERRNOS:
            # A connection dropped mid-file (reset, timed out): a download failure.
            raise InputError(_unreachable(source, address, target, error, found)) from None
        raise InputError(f"{clip(str(target), 300)}: cannot write the weights file there: "
                         f"{clip(error.strerror or str(error), MAX_REASON)}") from None
    except Exception as error:
        raise InputError(_unreachable(source, address, target, error, found)) from None
    path = Path(path)
    if prefix and not checked and not _has_sha256_prefix(path, prefix):
        _remove(path)
        raise InputError(_mismatch(source, address, path))
    return path


def _has_sha256_prefix(path: Path, prefix: str) -> bool:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError as error:
        raise InputError(f"{clip(str(path), 300)}: cannot read the weights file: "
                         f"{clip(error.strerror or str(error), MAX_REASON)}") from None
    return digest.hexdigest().startswith(prefix)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _mismatch(source: Source, address: str, path: Path) -> str:
    promise = (f"the md5 {source.publisher} publishes for {source.file_name} ({source.hash})"
               if source.hash_kind == "md5" else
               f"the sha256 {source.publisher} publishes for {source.file_name} (it must "
               f"begin with {source.hash})")
    return (f"{clip(address, 200)}: the file downloaded does not match {promise}: damaged "
            f"on the way, or another file; removed it from {clip(str(path), 200)}")


def _unreachable(source: Source, address: str, target: Path, error: Exception,
                 found: bool) -> str:
    # get_file raises a bare Exception("URL fetch failure on ..."), the urllib error its
    # context: quote the reason from that, not the address a second time.
    cause = error.__context__ if error.__context__ is not None else error
    code = getattr(cause, "code", None)
    if code is not None:
        reason = f"HTTP {code} {getattr(cause, 'msg', '') or ''}".strip()
    else:
        reason = str(getattr(cause, "reason", None) or cause) or type(cause).__name__
    stale = (f"the copy at {clip(str(target), 200)} did not match its hash and was "
             f"removed; ") if found else ""
    return (f"cannot download {source.file_name} from {clip(address, 200)}: "
            f"{clip(reason, MAX_REASON)}; {stale}to work offline, download it elsewhere and "
            f"put it at {clip(str(target), 200)}, or set {MIRROR_VARIABLE} to an address or "
            f"folder that has it")
