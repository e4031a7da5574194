"""Reading spec files and resolving ``extends``: YAML text to one merged, positioned tree.

    file or text --read/parse--> positioned tree --extends/merge--> merged tree

Shipped specs are found by name; any other base must be a .yaml/.yml file (after
symlinks too), so a spec cannot make vggspec read, and quote, any other file. A whole
chain of extends shares one budget of bytes and values: no more than one spec may hold.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import _yaml
from ._files import read_start
from .errors import MAX_PATH, InputError, Issue, SpecError, clip, did_you_mean, quote
from .schema_words import kind_words

MAX_EXTENDS_DEPTH = 16
SPEC_SUFFIXES = (".yaml", ".yml")


def tree_from_file(path: str | os.PathLike):
    """(merged root node, issues found while reading, name to show) for a spec file.
    Raises SpecError for a file that cannot be parsed, InputError for one that cannot
    be read."""
    if os.fspath(path) in ("", b""):  # Path("") would read the current folder
        raise InputError("'': no spec file given (the path is empty)")
    path = Path(path)
    return _load_tree(path, str(path), chain=(), budget=_yaml.Budget())


def tree_from_text(text: str, file: str, base_dir: str | os.PathLike):
    """The same for YAML text; ``extends`` paths are relative to ``base_dir``."""
    data, budget = text.encode("utf-8", "surrogatepass"), _yaml.Budget()
    try:
        text = _yaml.read_text(data, file)
        budget.bytes -= len(data)
        root = _yaml.parse(text, file, budget)
    except _yaml.YamlFault as fault:
        raise SpecError([fault.issue]) from None
    return _resolve_extends(root, file, Path(base_dir), (), budget)


class _OverBudget(Exception):
    """A base would take its chain of extends past a limit (the words say which)."""


def _load_tree(path: Path, display: str, chain: tuple[Path, ...], budget: _yaml.Budget):
    data = read_start(path, _yaml.MAX_BYTES + 1, "spec file", display)
    try:
        text = _yaml.read_text(data, display)
        if len(data) > budget.bytes:
            raise _OverBudget(f"{_yaml.MAX_BYTES:,} bytes")
        fresh, budget.bytes = budget.nodes == _yaml.MAX_NODES, budget.bytes - len(data)
        root = _yaml.parse(text, display, budget)
    except _yaml.TooManyNodes as fault:
        if fresh:
            raise SpecError([fault.issue]) from None
        raise _OverBudget(f"{_yaml.MAX_NODES:,} values and keys") from None
    except _yaml.YamlFault as fault:
        raise SpecError([fault.issue]) from None
    return _resolve_extends(root, display, path.parent, chain + (_real(path),), budget)


def _resolve_extends(root, display: str, base_dir: Path, chain: tuple[Path, ...],
                     budget: _yaml.Budget):
    """Return (merged root, issues, display name of the outermost file). The chain of
    extends shares one ``budget``: in all, no more bytes and values than one spec."""
    issues = [Issue(node.file, node.line, node.column, path, node.problem)
              for path, node in (_yaml.walk(root) if root else ()) if node.problem]
    if root is None:
        raise SpecError([Issue(display, 0, 0, "", "file is empty; a spec is a mapping with "
                                                  "name, input, blocks and head")])
    if not isinstance(root.value, dict):
        # Named, never quoted: the file may be something else entirely.
        raise SpecError([Issue(display, root.line, root.column, "$",
                               f"the top level must be a mapping with name, input, blocks "
                               f"and head; got {kind_words(root.value)}")])
    extends = root.value.get("extends")
    if extends is None:
        return root, issues, display
    if not isinstance(extends.value, str) or not extends.value:
        issues.append(Issue(display, extends.line, extends.column, "$.extends",
                            "must be a spec name (vgg16) or a path to a spec file"))
        raise SpecError(issues)
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise SpecError(issues + [Issue(display, extends.line, extends.column, "$.extends",
                                        f"more than {MAX_EXTENDS_DEPTH} levels of extends")])
    base_path, shown = _find_base(extends.value, base_dir)
    if base_path is None:
        raise SpecError(issues + [Issue(display, extends.line, extends.column, "$.extends",
                                        shown)])
    if _real(base_path) in chain:
        cycle = " -> ".join(clip(p.name) for p in chain + (_real(base_path),))
        raise SpecError(issues + [Issue(display, extends.line, extends.column, "$.extends",
                                        f"extends goes round in a cycle: {cycle}")])
    try:
        base, base_issues, _ = _load_tree(base_path, shown, chain, budget)
    except InputError as error:
        raise SpecError(issues + [Issue(display, extends.line, extends.column, "$.extends",
                                        str(error))]) from None
    except _OverBudget as over:
        raise SpecError(issues + [Issue(display, extends.line, extends.column, "$.extends", (
            f"{shown} is too large to extend: with the specs extending it, more than "
            f"{over} in all, the most one spec may hold"))]) from None
    child = _yaml.Node(dict(root.value), root.file, root.line, root.column)
    del child.value["extends"]
    return _merge(base, child), base_issues + issues, display


def _find_base(reference: str, base_dir: Path) -> tuple[Path | None, str]:
    """Where a base is: a name (vgg16) is a shipped spec; anything with a / or a .yaml or
    .yml ending is a path, relative to the extending file, that must end in .yaml or .yml
    (after symlinks too). Returns (path, name to show) or (None, the problem)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", reference):
        # Looked up among the shipped names, never built into a path: a name of 300
        # characters is simply not there (stat would raise 'File name too long').
        shipped = shipped_specs()
        if reference in shipped:
            return shipped[reference], f"{reference} (archs/{reference}.yaml)"
        return None, (f"no shipped spec named {quote(reference)}"
                      f"{did_you_mean(reference, sorted(shipped))}")
    candidate = Path(os.path.normpath(base_dir / reference))
    shown = clip(str(candidate), MAX_PATH)
    rule = "must be a shipped spec's name (vgg16) or a path to a .yaml or .yml file"
    if not reference.lower().endswith(SPEC_SUFFIXES):
        return None, f"{rule}; got {quote(reference)}"
    if not os.path.lexists(candidate):  # False for a name too long, too
        return None, f"base spec not found: {shown}"
    if not _real(candidate).name.lower().endswith(SPEC_SUFFIXES):
        return None, f"{rule}; {shown} is a link to a file without such a name"
    return candidate, shown


def _real(path: Path) -> Path:
    """The path with symlinks followed; unlike Path.resolve, never raises on a loop."""
    return Path(os.path.realpath(path))


def shipped_archs() -> Path:
    """The folder of shipped specs: installed as vggspec/archs, or archs/ in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "archs"
    return installed if installed.is_dir() else here.parent / "archs"


def shipped_specs() -> dict[str, Path]:
    """Name -> file of every shipped spec (archs/*.yaml), sorted by name."""
    return {path.stem: path for path in sorted(shipped_archs().glob("*.yaml"))
            if path.is_file()}


def _merge(base, child, top: bool = True):
    """Child over base: mappings merge key by key, a mapping whose ``type`` differs from
    its base's replaces it, anything else replaces. A null at the top level removes the
    key (``taps: null``); deeper, a null is a value like any other, and the schema says
    what it should be, so vggspec and a plain schema client agree on every file."""
    if not (isinstance(base.value, dict) and isinstance(child.value, dict)):
        return child
    base_type, child_type = base.value.get("type"), child.value.get("type")
    if base_type is not None and child_type is not None and base_type.value != child_type.value:
        return child
    merged = dict(base.value)
    for key, node in child.value.items():
        if node.value is None and top:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = _merge(merged[key], node, top=False)
        else:
            merged[key] = node
    return _yaml.Node(merged, child.file, child.line, child.column,
                      child.key_line, child.key_column)


