"""Checking a merged spec tree field by field, and turning it into a Spec.

    merged tree --schema + field rules--> Spec (or None) and every problem found

The JSON Schema says most of what can be wrong; the rules here say what it cannot (a
pooling name that is not last). Every problem that can be found is found in one pass:
a part with problems is left out of what is built, and a Spec is built whenever the parts
the planner needs (input, defaults, blocks, head) are sound, so that its checks run too.
Rules that need the layer walk (input too small, taps) belong to the planner.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from . import _yaml
from ._yaml import issue_at
from .errors import Issue, quote
from .schema import (batch_norm_defaults, conv_defaults, definition, head_defaults,
                     json_schema, lrn_defaults, pool_defaults, validator)
from .schema_words import Hints, translate
from .spec_types import Augment, BatchNorm, Block, Conv, Head, Lrn, Pool, Spec, Train

CONV_SETTINGS = ("kernel", "padding", "activation", "batch_norm")
# The parts of a spec the planner needs; with a problem in any of them no Spec is built.
NEEDED = ("input", "defaults", "blocks", "head")


def check_fields(root, issues: list[Issue], display: str
                 ) -> tuple[Spec | None, list[Issue], str | None]:
    """(Spec or None, every problem found, why the planner's checks cannot run or None).

    ``issues`` are problems already found while reading (they are kept)."""
    nodes = dict(_yaml.walk(root))
    bad_paths = {path for path, node in nodes.items() if node.problem}
    issues = list(issues)
    long_lists: list[tuple[str, str]] = []
    data = _cut_long_lists(root.plain(), [json_schema()], "$", long_lists)
    for path, message in long_lists:
        issues.append(issue_at(nodes, display, path, message))
    hint, harmless = Hints(), set()
    for error in validator().iter_errors(data):
        for path, message, at_key in translate(error, hint, reported=bad_paths):
            if not _within(path, bad_paths):
                issues.append(issue_at(nodes, display, path, message, at_key))
                if message.startswith("unknown key"):  # what is built never reads it
                    harmless.add(issues[-1])
    issues += _rules(data, display, nodes, [i for i in issues if i not in harmless])
    parts = {_part(issue.path) for issue in issues if issue not in harmless}
    broken = [part for part in NEEDED if part in parts
              or (part != "defaults" and part not in data)]
    if broken:
        parts = ", ".join(f"$.{part}" for part in broken)
        return None, issues, f"{parts} {'has' if len(broken) == 1 else 'have'} problems"
    try:
        found = {_part(issue.path) for issue in issues}
        spec = _build(data, display, nodes, ok={"taps", "train"} - found)
    except (KeyError, TypeError, ValueError, AttributeError):
        if not issues:  # a spec the schema passes must build: that is our bug
            raise
        # A shape the schema lets through only alongside a reported problem.
        return None, issues, "the spec has problems"
    return spec, issues, None


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent + ".") or path.startswith(parent + "[")


_STEP = re.compile(r'(\.\w+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$')


def _within(path: str, parents: set[str]) -> bool:
    """Whether ``path`` or one of its ancestors is in ``parents``: a few set lookups, so
    thousands of problems cost no more than thousands of lines."""
    while path:
        if path in parents:
            return True
        shorter = _STEP.sub("", path)
        if shorter == path:
            return False
        path = shorter
    return False


def _part(path: str) -> str:
    """The top-level key a JSON path is under: $.blocks[2].convs -> blocks."""
    match = re.match(r"\$\.(\w+)", path or "")
    return match.group(1) if match else ""


def _rules(data: dict, display: str, nodes: Mapping[str, Any], found: list[Issue]
           ) -> list[Issue]:
    """What the schema cannot say, checked on the parts it found sound."""
    issues = []
    blocks = data.get("blocks") if isinstance(data.get("blocks"), list) else []
    for index, raw in enumerate(blocks):
        path = f"$.blocks[{index}]"
        if not isinstance(raw, list) or any(_under(i.path, path) for i in found):
            continue
        for position, item in enumerate(raw[:-1]):
            if isinstance(item, str):
                issues.append(issue_at(nodes, display, f"{path}[{position}]", (
                    f"the pooling name {quote(item)} must come last in the block, after "
                    f"the filter counts")))
    return issues


def _batch_norm(value, inherited: BatchNorm | None) -> BatchNorm | None:
    """``batch_norm`` at one level: false is off; a mapping is on with those settings
    over the inherited ones; true is on with the inherited settings (or Keras')."""
    if value is False:
        return None
    base = inherited or BatchNorm(**batch_norm_defaults())
    if value is True:
        return base
    return BatchNorm(**{"epsilon": base.epsilon, "momentum": base.momentum, **value})


def _settings(level: dict, inherited: dict) -> dict:
    """Conv settings at one level (defaults, block or conv) over those above it."""
    out = {**inherited, **{k: level[k] for k in CONV_SETTINGS[:3] if k in level}}
    if "batch_norm" in level:
        # true, and the keys a mapping leaves out, come from the nearest setting above:
        # on there, or a mapping further up that a false in between turned off.
        above = inherited["batch_norm"] or inherited.get("_batch_norm_settings")
        out["batch_norm"] = _batch_norm(level["batch_norm"], above)
        if isinstance(level["batch_norm"], dict):
            out["_batch_norm_settings"] = out["batch_norm"]
    return out


def _build(data: dict, display: str, nodes: Mapping[str, Any], ok: set[str]) -> Spec:
    """The Spec; ``ok``: the optional parts (taps, train) that have no problems."""
    defaults = data.get("defaults", {})
    start = conv_defaults()
    default_pool = defaults.get("pool", start.pop("pool"))
    start["batch_norm"] = None
    top = _settings(defaults, start)
    lrn = Lrn(**{**lrn_defaults(), **defaults.get("lrn", {})})

    blocks = []
    for index, raw in enumerate(data["blocks"]):
        path = f"$.blocks[{index}]"
        pool, pool_path = default_pool, "$.defaults.pool" if "pool" in defaults else path
        if isinstance(raw, list):
            items, block_settings, conv_path = list(raw), top, path
            if items and isinstance(items[-1], str):
                pool, pool_path = items.pop(), f"{path}[{len(items)}]"
        else:
            items, conv_path = raw["convs"], f"{path}.convs"
            block_settings = _settings(raw, top)
            if "pool" in raw:
                pool, pool_path = raw["pool"], f"{path}.pool"
        convs = []
        for position, item in enumerate(items):
            if isinstance(item, str):  # a pooling name that is not last: reported
                raise ValueError(f"{path}: a pooling name before a conv")
            own = item if isinstance(item, dict) else {"filters": item}
            settings = _settings(own, block_settings)
            convs.append(Conv(filters=own["filters"], kernel=settings["kernel"],
                              padding=settings["padding"], activation=settings["activation"],
                              batch_norm=settings["batch_norm"], lrn=own.get("lrn", False),
                              path=f"{conv_path}[{position}]"))
        blocks.append(Block(tuple(convs), _pool(pool, pool_path), path))

    head_data = {**head_defaults(data["head"]["type"]), **data["head"]}
    head = Head(type=head_data["type"], units=tuple(head_data.get("units", ())),
                dropout=head_data.get("dropout", 0.0), classes=head_data.get("classes"),
                activation=head_data.get("activation", "softmax"),
                adaptive_pool=tuple(head_data["adaptive_pool"])
                if "adaptive_pool" in head_data else None)
    taps = tuple(data.get("taps") or ()) if "taps" in ok else ()
    return Spec(name=data.get("name", "spec"), input_shape=tuple(data["input"]["shape"]),
                blocks=tuple(blocks), head=head,
                taps=taps or tuple(f"block{i + 1}" for i in range(len(blocks))),
                lrn=lrn, description=data.get("description", ""),
                train=_train(data["train"]) if "train" in ok and "train" in data else None,
                source=display, nodes=nodes)


def _train(raw: dict) -> Train:
    return Train(**{**raw, "augment": Augment(**raw.get("augment", {}))})


def _pool(raw: str | dict, path: str) -> Pool:
    size = pool_defaults()["size"]
    if isinstance(raw, str):
        return Pool(type=raw, size=size, stride=size, path=path)
    size = raw.get("size", size)
    return Pool(type=raw["type"], size=size, stride=raw.get("stride", size), path=path)


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
            schema = definition(schema)
        out.append(schema)
        out += _branches(schema.get("oneOf", []) + schema.get("anyOf", []))
    return out


def _takes(schema: dict, kind: str) -> bool:
    types = schema.get("type", [])
    return kind in ([types] if isinstance(types, str) else types)


def _item_schema(schema: dict, index: int) -> dict:
    prefix = schema.get("prefixItems", [])
    return prefix[index] if index < len(prefix) else schema.get("items", {})
