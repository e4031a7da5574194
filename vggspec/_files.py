"""Output paths checked before work starts, and files written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import InputError

_SPECIAL = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
# Kernel interfaces look like regular files but may block on read (/proc/kmsg) or never
# end; no spec, image or weights file lives there.
_KERNEL = (Path("/proc"), Path("/sys"))
# atomic_path writes ".<stem>.tmp-<8 hex><suffix>" beside the output: 14 more bytes.
_TEMPORARY_EXTRA = 14
_NAME_MAX = 255


def _not_regular(mode: int, display: str, kind: str) -> InputError | None:
    if stat.S_ISREG(mode):
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    if stat.S_ISDIR(mode):
        return InputError(f"{display}: is a directory, not {article} {kind}")
    what = next((words for test, words in _SPECIAL if test(mode)), "not a regular file")
    return InputError(f"{display}: is {what}, not {article} {kind}; only regular files are "
                      f"read")


def _os_error(error: OSError | ValueError, display: str) -> InputError:
    if isinstance(error, ValueError):  # os.stat's "embedded null byte"
        return InputError(f"{display}: a file name cannot contain a NUL character")
    if isinstance(error, FileNotFoundError):
        return InputError(f"{display}: no such file")
    if isinstance(error, PermissionError):
        return InputError(f"{display}: permission denied")
    return InputError(f"{display}: cannot read: {error.strerror or error}")


def check_regular(path: str | os.PathLike, kind: str, display: str | None = None) -> Path:
    """Refuse, without opening it, a path that is missing or not a regular file (a
    folder, FIFO, socket or device, any of which could hang or never end a read).
    For paths handed to libraries that open files themselves (h5py)."""
    path, display = Path(path), display or str(path)
    try:
        mode = os.stat(path).st_mode
        real = Path(os.path.realpath(path))
    except (OSError, ValueError) as error:
        raise _os_error(error, display) from None
    problem = _not_regular(mode, display, kind)
    if problem:
        raise problem
    article = "an" if kind[0] in "aeiou" else "a"
    for root in _KERNEL:
        if real == root or root in real.parents:
            raise InputError(f"{display}: is a kernel interface under {root}, not {article} "
                             f"{kind}; refused unread")
    return path


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, kind: str, display: str | None = None
                 ) -> Iterator[BinaryIO]:
    """Open an input file for reading, refusing anything but a regular file: checked
    before opening, and again on the open handle (opened non-blocking, so a FIFO swapped
    in between cannot hang the open). InputError names the file as ``display``."""
    display = display or str(path)
    check_regular(path, kind, display)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise _os_error(error, display) from None
    try:
        problem = _not_regular(os.fstat(descriptor).st_mode, display, kind)
        if problem:
            raise problem
        os.set_blocking(descriptor, True)
        handle = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with handle:
        yield handle


def read_start(path: str | os.PathLike, size: int, kind: str, display: str | None = None
               ) -> bytes:
    """The first ``size`` bytes of an input file; InputError, naming it as ``display``,
    for a path that is missing, not a regular file or unreadable. ``kind`` says what it
    should be."""
    display = display or str(path)
    with open_regular(path, kind, display) as handle:
        try:
            return handle.read(size)
        except OSError as error:
            raise _os_error(error, display) from None


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...]) -> Path:
    """Refuse, before any work, an output file that could not be written."""
    path = Path(path)
    if "\0" in str(path):
        raise InputError(f"{path}: a file name cannot contain a NUL character")
    if not path.name.endswith(suffixes):
        raise InputError(f"{path}: the file name must end in {' or '.join(suffixes)}")
    if path.name in suffixes:
        raise InputError(f"{path}: the file name needs a name before {path.name}")
    if len(os.fsencode(path.name)) + _TEMPORARY_EXTRA > _NAME_MAX:
        raise InputError(f"{path}: the file name is too long (at most "
                         f"{_NAME_MAX - _TEMPORARY_EXTRA} bytes)")
    try:
        is_dir = path.is_dir()
    except OSError as error:
        raise InputError(f"{path}: cannot write: {error.strerror or error}") from None
    if is_dir:
        raise InputError(f"{path}: is a directory")
    check_output_dir(path.parent, create=False)
    return path


def check_output_dir(path: str | os.PathLike, create: bool = True) -> Path:
    """Refuse an output folder that is missing (or cannot be made) or not writable."""
    path = Path(path)
    if "\0" in str(path):
        raise InputError(f"{path}: a folder name cannot contain a NUL character")
    try:
        path.exists()
    except OSError as error:
        raise InputError(f"{path}: cannot use the folder: {error.strerror or error}") from None
    if create and not path.exists():
        try:
            path.mkdir(parents=True)
        except OSError as error:
            raise InputError(f"{path}: cannot create the folder: "
                             f"{error.strerror or error}") from None
    if not path.is_dir():
        raise InputError(f"{path}: no such folder" if not path.exists()
                         else f"{path}: is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{path}: folder is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is renamed to
    ``path`` in one step, and on any error or Ctrl-C it is removed."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
