"""Output paths checked before work starts, and files written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from .errors import InputError


def read_start(path: str | os.PathLike, size: int, kind: str, display: str | None = None
               ) -> bytes:
    """The first ``size`` bytes of an input file; InputError, naming it as ``display``,
    for a path that is missing, a folder or unreadable. ``kind`` says what it should be."""
    path, display = Path(path), display or str(path)
    if path.is_dir():
        raise InputError(f"{display}: is a directory, not a {kind}")
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise InputError(f"{display}: no such file") from None
    except PermissionError:
        raise InputError(f"{display}: permission denied") from None
    except OSError as error:
        raise InputError(f"{display}: cannot read: {error.strerror or error}") from None


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...]) -> Path:
    """Refuse, before any work, an output file that could not be written."""
    path = Path(path)
    if not path.name.endswith(suffixes):
        raise InputError(f"{path}: the file name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    check_output_dir(path.parent, create=False)
    return path


def check_output_dir(path: str | os.PathLike, create: bool = True) -> Path:
    """Refuse an output folder that is missing (or cannot be made) or not writable."""
    path = Path(path)
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
