"""Start a spec of one's own, with editor completion from the first keystroke.

    file name + shipped base --new_spec--> FILE.yaml (modeline, extends, name, examples)

The modeline points the YAML language server (VS Code's YAML extension, and other
editors') at the schema installed with vggspec, by a path relative to the new file, so
completion and checking work wherever the file is written. No TensorFlow here.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from ._files import atomic_path, check_output_file
from .errors import InputError, UsageError, quote
from .extends import shipped_specs
from .spec import SPEC_SUFFIXES, json_schema, spec_from_text

SCHEMA_FILE = "vggspec.schema.json"
# yamllint's default line-length rule: at most 80 columns, unless the line is one word.
MAX_COLUMNS = 80
# The schema's limit on `name`, read from it.
MAX_NAME = json_schema()["properties"]["name"]["maxLength"]
# Plain words that YAML (1.1 or 1.2) reads as a boolean or null, not a string: a spec
# written as yes.yaml is named "yes", quoted.
_NOT_STRINGS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}

_TEMPLATE = """\
{modeline}
# Starts from {base}; what you write here overrides it.
extends: {base}
name: {name}
# Overrides to uncomment: mappings merge key by key, lists replace whole.
# `vggspec validate --resolved` on this file prints the merged spec.
# input:
#   shape: [64, 64, 3]
# head:
#   classes: 10
"""


def new_spec(path: str | os.PathLike, base: str = "vgg16", force: bool = False) -> Path:
    """Write a starter spec at ``path`` that extends the shipped spec ``base``.

    The file holds a modeline pointing editors at the installed schema (by a path
    relative to the file's folder, or an absolute ``file:`` address where no relative
    path exists or one would not survive the modeline: another drive, a space or a '#'),
    ``extends: <base>``, ``name:`` the file's stem made a valid name, and commented-out
    example overrides. It is written whole or not at all, and loads with ``load_spec``.

    Raises InputError (one line) for a name not ending in .yaml or .yml, a folder that
    does not exist or cannot be written, an existing file unless ``force``, a ``base``
    that is not a shipped spec (the message lists them), or a vggspec whose schema is
    not a file on disk.

    >>> new_spec("my_net.yaml", base="vgg16_cifar")     # doctest: +SKIP
    PosixPath('my_net.yaml')
    """
    if os.fspath(path) in ("", b""):  # Path("") would be the current folder
        raise InputError("'': no spec file given (the path is empty)")
    path = Path(path)
    shipped = list(shipped_specs())
    if base not in shipped:
        raise UsageError(f"no shipped spec named {quote(base)}; choose one of: "
                         f"{', '.join(shipped)}")
    check_output_file(path, SPEC_SUFFIXES)
    if os.path.lexists(path) and not force:
        raise InputError(f"{path}: already exists; --force replaces it")
    text = _TEMPLATE.format(modeline=_modeline(path), base=base, name=_name(path.stem))
    # A starter that did not load would be our mistake (or a broken base); nothing is
    # written then.
    spec_from_text(text, file=str(path), base_dir=path.parent)
    with atomic_path(path) as temporary:
        # Bytes, so that the file has \n line ends everywhere (yamllint's default).
        temporary.write_bytes(text.encode("utf-8"))
    return path


def _modeline(path: Path) -> str:
    """The ``# yaml-language-server: $schema=...`` line for a spec written at ``path``.
    The YAML language server resolves a relative schema path from the folder of the file
    as opened, without following links (Node's path.resolve): so abspath, not realpath.
    A line over 80 columns drops the space after the colon, which the server accepts and
    which makes the line one word, the only kind yamllint's default rules let run long."""
    reference = _schema_reference(Path(os.path.abspath(path.parent)))
    line = f"# yaml-language-server: $schema={reference}"
    return line if len(line) <= MAX_COLUMNS else f"# yaml-language-server:$schema={reference}"


def _schema_reference(folder: Path) -> str:
    """How a file in ``folder`` names the installed schema: a relative path with '/'
    separators, or a ``file:`` URI where the relative path cannot be written."""
    schema = _installed_schema()
    try:
        reference = Path(os.path.relpath(schema, folder)).as_posix()
    except ValueError:  # Windows: another drive, so no relative path exists
        return schema.as_uri()
    # The language server reads the path up to the first space, and cuts it at a '#'
    # (a fragment); a URI escapes both.
    if "#" in reference or any(char.isspace() for char in reference):
        return schema.as_uri()
    # It takes a path that starts with 'http' or 'file:' for an address: ./ keeps
    # a folder such as http-venv/ a path.
    return reference if reference.startswith("../") else "./" + reference


def _installed_schema() -> Path:
    """The schema file vggspec reads, as an absolute path on disk."""
    location = os.path.abspath(str(resources.files("vggspec.schema").joinpath(SCHEMA_FILE)))
    if not os.path.isfile(location):
        raise InputError(f"{location}: vggspec's schema is not a file on "
                         f"disk (vggspec runs from a zip?), so no modeline can point at it; "
                         f"write it with `vggspec schema > {SCHEMA_FILE}` and point at that")
    return Path(location)


def _name(stem: str) -> str:
    """``stem`` as a spec name: letters, digits, '_', '.', '-', starting with a letter."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    if not re.match(r"[A-Za-z]", name):
        name = "spec_" + name
    name = name[:MAX_NAME]
    return f'"{name}"' if name.lower() in _NOT_STRINGS else name
