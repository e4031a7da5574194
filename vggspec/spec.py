"""Load a YAML spec, check it, and return it as frozen dataclasses.

    YAML text --load--> positioned tree --extends/merge--> --validate--> Spec

No TensorFlow here: `vggspec validate` must start in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import _yaml
from ._files import read_start
from .errors import (MAX_PATH, MAX_SHOWN, InputError, Issue, SpecError, clip, did_you_mean,
                     quote)
from .names import block_tap, tap_targets

MAX_EXTENDS_DEPTH = 16
# extends reads shipped specs by name, and otherwise only files with these endings, so a
# spec cannot make vggspec read (and quote in an error) any other file.
SPEC_SUFFIXES = (".yaml", ".yml")
CONV_SETTINGS = ("kernel", "padding", "activation", "batch_norm")


@dataclass(frozen=True)
class Conv:
    """One convolution: ``filters`` outputs of a ``kernel`` x ``kernel`` window."""

    filters: int
    kernel: int = 3
    padding: str = "same"
    activation: str = "relu"
    batch_norm: bool = False
    lrn: bool = False
    path: str = ""


@dataclass(frozen=True)
class Pool:
    """The pooling layer that ends a block; ``type`` is max, avg or none."""

    type: str = "max"
    size: int = 2
    stride: int = 2
    path: str = ""


@dataclass(frozen=True)
class Block:
    """A run of convs followed by one pooling layer."""

    convs: tuple[Conv, ...]
    pool: Pool
    path: str = ""


@dataclass(frozen=True)
class Lrn:
    """Local response normalisation settings (size channels, alpha, beta, bias k)."""

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 2.0


@dataclass(frozen=True)
class Head:
    """The classifier head: ``dense`` (flatten, fc layers, predictions), ``global_avg``,
    ``global_max`` or ``none``."""

    type: str
    units: tuple[int, ...] = ()
    dropout: float = 0.0
    classes: int = 0
    activation: str = "softmax"
    path: str = "$.head"


@dataclass(frozen=True)
class Spec:
    """A checked spec: everything the planner and builder need, defaults applied."""

    name: str
    input_shape: tuple[int | None, int | None, int]
    blocks: tuple[Block, ...]
    head: Head
    taps: tuple[str, ...]
    lrn: Lrn = Lrn()
    description: str = ""
    source: str = "<spec>"
    nodes: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def issue(self, path: str, message: str) -> Issue:
        """An Issue at the file, line and column where ``path`` was written."""
        return _issue_at(self.nodes, self.source, path, message)

    def to_dict(self) -> dict:
        """The resolved spec in the long form: what will be built, every default written."""
        blocks = []
        for block in self.blocks:
            blocks.append({
                "convs": [{"filters": c.filters, "kernel": c.kernel, "padding": c.padding,
                           "activation": c.activation, "batch_norm": c.batch_norm,
                           "lrn": c.lrn} for c in block.convs],
                "pool": {"type": block.pool.type, "size": block.pool.size,
                         "stride": block.pool.stride},
            })
        head: dict[str, Any] = {"type": self.head.type}
        if self.head.type == "dense":
            head.update(units=list(self.head.units), dropout=self.head.dropout,
                        classes=self.head.classes, activation=self.head.activation)
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update({
            "input": {"shape": list(self.input_shape)},
            "defaults": {"lrn": {"size": self.lrn.size, "alpha": self.lrn.alpha,
                                 "beta": self.lrn.beta, "bias": self.lrn.bias}},
            "blocks": blocks, "head": head, "taps": list(self.taps),
        })
        return out


# --- the schema -------------------------------------------------------------------

@lru_cache(maxsize=1)
def json_schema() -> dict:
    """The spec's JSON Schema (Draft 2020-12), as shipped in vggspec/schema/."""
    text = resources.files("vggspec.schema").joinpath("vggspec.schema.json").read_text("utf-8")
    return json.loads(text)


def _defaults_of(subschema: dict) -> dict:
    return {key: prop["default"] for key, prop in subschema["properties"].items()
            if "default" in prop}


@lru_cache(maxsize=1)
def _validator():
    import jsonschema
    from jsonschema import validators

    # JSON Schema counts 16.0 as an integer; a filter count of 16.0 is a typo to report.
    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    strict = validators.extend(jsonschema.Draft202012Validator, type_checker=checker)
    return strict(json_schema())


# --- loading ----------------------------------------------------------------------

def load_spec(path: str | os.PathLike) -> Spec:
    """Read, merge (``extends``) and check a spec file.

    Raises SpecError listing every problem with its file, line, column and JSON
    path, or InputError when the file itself cannot be read.

    >>> spec = load_spec("archs/vgg16.yaml")
    >>> [len(b.convs) for b in spec.blocks]
    [2, 2, 3, 3, 3]
    """
    if os.fspath(path) in ("", b""):  # Path("") would read the current folder
        raise InputError("'': no spec file given (the path is empty)")
    path = Path(path)
    return _finish(*_load_tree(path, str(path), chain=(), budget=_yaml.Budget()))


def spec_from_text(text: str, file: str = "<text>", base_dir: str | os.PathLike = ".") -> Spec:
    """Check a spec given as YAML text; ``extends`` paths are relative to ``base_dir``.

    >>> spec_from_text("name: x\\ninput: {shape: [32, 32, 3]}\\nblocks: [[8, max]]\\n"
    ...                "head: {type: none}").blocks[0].convs[0].filters
    8
    """
    data, budget = text.encode("utf-8", "surrogatepass"), _yaml.Budget()
    try:
        text = _yaml.read_text(data, file)
        budget.bytes -= len(data)
        root = _yaml.parse(text, file, budget)
    except _yaml.YamlFault as fault:
        raise SpecError([fault.issue]) from None
    return _finish(*_resolve_extends(root, file, Path(base_dir), (), budget))


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
                               f"and head; got {_kind(root.value)}")])
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
        shipped = {p.stem: p for p in shipped_archs().glob("*.yaml") if p.is_file()}
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


def _merge(base, child):
    """Child over base: mappings merge key by key, a mapping whose ``type`` differs from
    its base's replaces it, null removes a key, anything else replaces."""
    if not (isinstance(base.value, dict) and isinstance(child.value, dict)):
        return child
    base_type, child_type = base.value.get("type"), child.value.get("type")
    if base_type is not None and child_type is not None and base_type.value != child_type.value:
        return child
    merged = dict(base.value)
    for key, node in child.value.items():
        if node.value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = _merge(merged[key], node)
        else:
            merged[key] = node
    return _yaml.Node(merged, child.file, child.line, child.column,
                      child.key_line, child.key_column)


# --- checking ---------------------------------------------------------------------

def _finish(root, issues: list[Issue], display: str) -> Spec:
    nodes = dict(_yaml.walk(root))
    bad_paths = {path for path, node in nodes.items() if node.problem}
    long_lists: list[tuple[str, str]] = []
    data = _cut_long_lists(root.plain(), [json_schema()], "$", long_lists)
    for path, message in long_lists:
        issues.append(_issue_at(nodes, display, path, message))
    hint = _Hints()
    for error in _validator().iter_errors(data):
        for path, message, at_key in _translate(error, hint):
            if not any(path == bad or path.startswith(bad + ".") or path.startswith(bad + "[")
                       for bad in bad_paths):
                issues.append(_issue_at(nodes, display, path, message, at_key))
    if issues:
        raise SpecError(issues)
    spec, rule_issues = _build(data, display, nodes)
    if rule_issues:
        raise SpecError(rule_issues)
    from .plan import plan_layers  # plain Python; shares one layer walk with the planner

    layers, plan_issues = plan_layers(spec)
    if plan_issues:  # the walk stopped early: taps past that point would be false alarms
        raise SpecError(plan_issues)
    targets = tap_targets(layer.name for layer in layers)
    names, hint = sorted(targets), _Hints()
    for index, tap in enumerate(spec.taps):
        if tap not in targets:
            plan_issues.append(spec.issue(f"$.taps[{index}]", f"no layer or block named "
                                          f"{quote(tap)}{hint(tap, names)}"))
    if plan_issues:
        raise SpecError(plan_issues)
    return spec


def _build(data: dict, display: str, nodes: Mapping[str, Any]) -> tuple[Spec, list[Issue]]:
    top = json_schema()
    defaults = data.get("defaults", {})
    conv_defaults = _defaults_of(top["properties"]["defaults"])
    default_pool = defaults.get("pool", conv_defaults.pop("pool"))
    conv_defaults.update({k: defaults[k] for k in CONV_SETTINGS if k in defaults})
    lrn = Lrn(**{**_defaults_of(top["$defs"]["lrn"]), **defaults.get("lrn", {})})
    issues: list[Issue] = []

    def at(path: str, message: str) -> None:
        issues.append(_issue_at(nodes, display, path, message))

    if lrn.size % 2 == 0:
        at("$.defaults.lrn.size", f"must be odd (a window centred on each channel), "
                                  f"got {lrn.size}")

    blocks = []
    for index, raw in enumerate(data["blocks"]):
        path = f"$.blocks[{index}]"
        pool, pool_path = default_pool, "$.defaults.pool" if "pool" in defaults else path
        if isinstance(raw, list):
            items, overrides, conv_path = list(raw), {}, path
            if items and isinstance(items[-1], str):
                pool, pool_path = items.pop(), f"{path}[{len(items)}]"
            for position, item in enumerate(items):
                if isinstance(item, str):
                    at(f"{path}[{position}]", f"the pooling name {quote(item)} must come "
                                              f"last in the block, after the filter counts")
        else:
            items, conv_path = raw["convs"], f"{path}.convs"
            overrides = {k: raw[k] for k in CONV_SETTINGS if k in raw}
            if "pool" in raw:
                pool, pool_path = raw["pool"], f"{path}.pool"
        if not items:
            at(path, "a block needs at least one conv before its pooling")
        convs = []
        for position, item in enumerate(items):
            if isinstance(item, str):
                continue
            settings = {**conv_defaults, **overrides,
                        **(item if isinstance(item, dict) else {"filters": item})}
            convs.append(Conv(path=f"{conv_path}[{position}]", **settings))
        blocks.append(Block(tuple(convs), _pool(pool, pool_path), path))

    head_data = data["head"]
    if head_data["type"] == "dense":
        head_data = {**_defaults_of(top["$defs"]["head"]), **head_data}
        head_data["units"] = tuple(head_data["units"])
    head = Head(**head_data)
    shape = tuple(data["input"]["shape"])
    if head.type == "dense" and None in shape[:2]:
        at("$.input.shape", "a dense head needs a fixed input size: give height and width, "
                            "or use head type global_avg, global_max or none")
    taps = tuple(data.get("taps") or (block_tap(i + 1) for i in range(len(blocks))))
    spec = Spec(name=data["name"], input_shape=shape, blocks=tuple(blocks), head=head,
                taps=taps, lrn=lrn, description=data.get("description", ""),
                source=display, nodes=nodes)
    return spec, issues


def _pool(raw: str | dict, path: str) -> Pool:
    size = _defaults_of(json_schema()["$defs"]["pool"]["oneOf"][1])["size"]
    if isinstance(raw, str):
        return Pool(type=raw, size=size, stride=size, path=path)
    size = raw.get("size", size)
    return Pool(type=raw["type"], size=size, stride=raw.get("stride", size), path=path)


class _Hints:
    """did_you_mean for the first MAX_SHOWN problems (as many as are printed), then
    nothing: thousands of unknown keys or taps cost no more than the lines a user sees."""

    def __init__(self) -> None:
        self.left = MAX_SHOWN

    def __call__(self, word: str, choices) -> str:
        self.left -= 1
        return did_you_mean(word, choices) if self.left >= 0 else ""


def _cut_long_lists(value: Any, schemas: list[dict], path: str,
                    found: list[tuple[str, str]]) -> Any:
    """``value`` with every list longer than the schema allows at its place (the largest
    maxItems of the branches that take a list) cut to that length, each cut noted in
    ``found`` as (path, message): one line for a list of 100,000 items, and jsonschema
    then checks at most the items a valid spec may have."""
    schemas = _branches(schemas)
    if isinstance(value, list):
        bounds = [s.get("maxItems") for s in schemas if _takes(s, "array")]
        if bounds and None not in bounds and len(value) > max(bounds):
            most = max(bounds)
            found.append((path, f"must have at most {most} item{'s' * (most != 1)}, got "
                                f"{len(value)}"))
            value = value[:most]
        return [_cut_long_lists(item, [_item_schema(s, index) for s in schemas
                                       if _takes(s, "array")],
                                _yaml.child_path(path, index), found)
                for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _cut_long_lists(child, [s["properties"][key] for s in schemas
                                             if key in s.get("properties", {})],
                                     _yaml.child_path(path, key), found)
                for key, child in value.items()}
    return value


def _branches(schemas: list[dict]) -> list[dict]:
    """The schemas, their $refs followed and their oneOf/anyOf branches spread out."""
    out = []
    for schema in schemas:
        if not isinstance(schema, dict):
            continue
        if "$ref" in schema:
            schema = json_schema()["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
        out.append(schema)
        out += _branches(schema.get("oneOf", []) + schema.get("anyOf", []))
    return out


def _takes(schema: dict, kind: str) -> bool:
    types = schema.get("type", [])
    return kind in ([types] if isinstance(types, str) else types)


def _item_schema(schema: dict, index: int) -> dict:
    prefix = schema.get("prefixItems", [])
    return prefix[index] if index < len(prefix) else schema.get("items", {})


def _issue_at(nodes: Mapping[str, Any], source: str, path: str, message: str,
              at_key: bool = False) -> Issue:
    """Place an issue at the node for ``path`` (at its key, if asked), or at its nearest
    written ancestor."""
    probe = path
    while probe and probe not in nodes:
        shorter = re.sub(r'(\.\w+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$', "", probe)
        if shorter == probe:
            break
        probe = shorter
    node = nodes.get(probe)
    if node is None:
        return Issue(source, 0, 0, path, message)
    if at_key and probe == path and node.key_line:
        return Issue(node.file, node.key_line, node.key_column, path, message)
    return Issue(node.file, node.line, node.column, path, message)


# --- schema errors in the user's words --------------------------------------------

_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "a string",
               "boolean": "true or false", "array": "a list", "object": "a mapping",
               "null": "null"}


_PATTERN_WORDS = {
    "^[A-Za-z][A-Za-z0-9_.-]*$": "must start with a letter, then letters, digits, '_', "
                                 "'.' or '-'",
    "^[a-z][a-z0-9_]*$": "must be a layer or block name (lower-case letters, digits, '_')",
}


def _kind(value: Any) -> str:
    """What a value is, without quoting it."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "true or false" if isinstance(value, bool) else "a number"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _json_path(parts) -> str:
    path = "$"
    for part in parts:
        path = _yaml.child_path(path, part)
    return path


def _branch_title(branch: dict) -> str:
    if "$ref" in branch:
        branch = json_schema()["$defs"][branch["$ref"].rsplit("/", 1)[-1]]
    if "title" in branch:
        return branch["title"]
    return _TYPE_WORDS.get(branch.get("type", ""), "something else")


def _translate(error, hint=did_you_mean) -> Iterator[tuple[str, str, bool]]:
    """Yield (JSON path, message, whether it is about the key) for a jsonschema error,
    in the user's words rather than the schema's; ``hint`` is did_you_mean or a _Hints."""
    path, value, rule, limit = _json_path(error.absolute_path), error.instance, \
        error.validator, error.validator_value
    if rule in ("oneOf", "anyOf"):
        branches: dict[int, list] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        for index in range(len(limit)):
            errors = branches.get(index, [])
            if not any(e.validator in ("type", "oneOf", "anyOf", "enum")
                       and not e.relative_path for e in errors):
                for sub in errors:
                    yield from _translate(sub, hint)
                return
        for index in range(len(limit)):  # no branch of the right type: try its enum branch
            errors = branches.get(index, [])
            if any(e.validator == "enum" and not e.relative_path for e in errors) and \
                    isinstance(value, str):
                for sub in errors:
                    yield from _translate(sub, hint)
                return
        titles = [_branch_title(branch) for branch in limit]
        words = ", ".join(titles[:-1]) + " or " + titles[-1] if len(titles) > 1 else titles[0]
        yield path, f"must be {words}; got {_describe(value)}", False
    elif rule == "type":
        kinds = [limit] if isinstance(limit, str) else limit
        words = " or ".join(_TYPE_WORDS[k] for k in kinds)
        yield path, f"must be {words}, got {_describe(value)}", False
    elif rule == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for key in value:
            if key not in allowed:
                yield _yaml.child_path(path, key), (
                    f"unknown key {_describe(key)}{hint(key, allowed)} "
                    f"(allowed here: {', '.join(allowed)})"), True
    elif rule == "required":
        for key in limit:
            if key not in value:
                yield path, f"missing required key '{key}'", False
    elif rule == "enum":
        choices = ", ".join(str(c) for c in limit)
        close = hint(value, [str(c) for c in limit]) if isinstance(value, str) else ""
        yield path, f"must be one of {choices}, got {_describe(value)}{close}", False
    elif rule == "minimum":
        yield path, f"must be at least {limit}, got {_describe(value)}", False
    elif rule == "maximum":
        yield path, f"must be at most {limit}, got {_describe(value)}", False
    elif rule == "exclusiveMinimum":
        yield path, f"must be more than {limit}, got {_describe(value)}", False
    elif rule == "exclusiveMaximum":
        yield path, f"must be less than {limit}, got {_describe(value)}", False
    elif rule == "minItems":
        plural = "s" * (limit != 1)
        yield path, f"must have at least {limit} item{plural}, got {len(value)}", False
    elif rule == "maxItems":
        plural = "s" * (limit != 1)
        yield path, f"must have at most {limit} item{plural}, got {len(value)}", False
    elif rule == "maxLength":
        yield path, f"must be at most {limit} characters, got {len(value)}", False
    elif rule == "minLength":
        yield path, "must not be empty", False
    elif rule == "pattern":
        words = _PATTERN_WORDS.get(limit, f"must match {limit}")
        yield path, f"{words}, got {_describe(value)}", False
    elif rule == "uniqueItems":
        seen = set()
        for index, item in enumerate(value):
            if item in seen:
                yield f"{path}[{index}]", f"{_describe(item)} is listed twice", False
            seen.add(item)
    elif rule == "not":
        yield path, f"not allowed here: {error.schema.get('description', '')}", False
    else:  # a rule this schema does not use; error.message would quote the value whole
        yield path, f"does not meet the schema's {rule!r} rule", False
