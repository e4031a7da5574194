"""A safe YAML reader that keeps the file, line and column of every value.

Built on PyYAML's event stream rather than its constructors, so that no tag can
construct an object, aliases are refused before they can expand, nesting is bounded
without recursion, and plain scalars are read the way a reader expects today (YAML
1.2's core schema). Where YAML 1.1 readers, PyYAML's `safe_load` among them, would
read a value differently (``yes`` as true, ``010`` as 8, ``1e-3`` as a string), the
value is reported with its fix instead of being taken either way.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from .errors import Issue, clip, quote

MAX_BYTES = 256 << 10  # specs are a few hundred bytes; this bounds a hostile one
MAX_DEPTH = 32
# Values (scalars, lists, mappings) and keys a spec and the specs it extends may hold in all.
# The largest network (32 blocks of 64 convs) written compactly needs about 2,200; this
# bounds the pure-Python parser and every check after it to a second or two.
MAX_NODES = 20_000
# No setting takes a number this long; longer ones are reported, never converted (Python
# refuses to convert integers of more than 4,300 digits, and they mean nothing here).
MAX_DIGITS = 18


@dataclass(eq=False)
class Node:
    """A value from a YAML file with where it stands; containers hold Nodes."""

    value: Any
    file: str
    line: int
    column: int
    key_line: int = 0
    key_column: int = 0
    problem: str | None = field(default=None)

    def plain(self) -> Any:
        """The value as plain Python data (dicts, lists, scalars)."""
        if isinstance(self.value, dict):
            return {key: child.plain() for key, child in self.value.items()}
        if isinstance(self.value, list):
            return [child.plain() for child in self.value]
        return self.value


class YamlFault(Exception):
    """A problem that stops reading the file; carries one Issue."""

    def __init__(self, issue: Issue):
        super().__init__(str(issue))
        self.issue = issue


class TooManyNodes(YamlFault):
    """The file holds more values than its share of MAX_NODES."""


@dataclass
class Budget:
    """What a spec and the specs it extends may use in all, so that a chain of extends
    costs no more than one file at the limits."""

    bytes: int = MAX_BYTES
    nodes: int = MAX_NODES


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
# What PyYAML (YAML 1.1) reads as a float: a dot is required, and an exponent needs a sign.
_FLOAT_11 = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?")
_BOOL_11 = {"yes", "no", "on", "off", "y", "n"}
_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


def _plain_scalar(text: str) -> tuple[Any, str | None]:
    """Read an unquoted scalar; return (value, problem) where problem is a fix to report."""
    if text in _NULL:
        return None, None
    if text in _TRUE:
        return True, None
    if text in _FALSE:
        return False, None
    lowered = text.lower()
    if lowered in _BOOL_11:
        return text, (f"{quote(text)} is ambiguous: YAML 1.1 reads it as a boolean; "
                      f"write true or false, or quote it for a string")
    if lowered in {".nan", ".inf", "-.inf", "+.inf"}:
        return text, f"{text} is not allowed: numbers must be finite"
    digits = sum(char.isdigit() for char in text)
    if digits > MAX_DIGITS and re.fullmatch(r"[-+]?[0-9][0-9_]*", text):
        return text, (f"{quote(text)} is too large ({digits:,} digits): "
                      f"no setting takes a number this big")
    if re.fullmatch(r"[-+]?0[0-9_]+", text):
        return text, (f"{quote(text)} has a leading zero: YAML 1.1 reads it as an octal number; "
                      f"write {int(text.replace('_', ''))} or quote it for a string")
    if re.fullmatch(r"[-+]?(0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)", text):
        return text, f"{quote(text)} is not a decimal number; write it in decimal"
    if "_" in text and re.fullmatch(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?", text):
        return text, (f"{quote(text)} has underscores: YAML 1.1 reads it as a number and "
                      f"YAML 1.2 as a string; write {clip(text.replace('_', ''))}")
    if re.fullmatch(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?", text):
        return text, (f"{quote(text)} is a base-60 number to YAML 1.1 readers; "
                      f"quote it if a string is meant")
    if _INT.fullmatch(text):
        return int(text), None
    if _FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            return text, f"{quote(text)} is too large: numbers must be finite"
        if not _FLOAT_11.fullmatch(text):
            return text, (f"{quote(text)} is a string to YAML 1.1 readers; "
                          f"write it as {_float_fix(value)}")
        return value, None
    return text, None


def _float_fix(value: float) -> str:
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        sign = "" if exponent.startswith(("-", "+")) else "+"
        return f"{mantissa}e{sign}{exponent}"
    return text


def read_text(data: bytes, file: str) -> str:
    """Decode a spec file's bytes, refusing what is too large or not UTF-8."""
    if len(data) > MAX_BYTES:
        raise YamlFault(Issue(file, 0, 0, "", f"file is larger than {MAX_BYTES:,} bytes, "
                              f"the most a spec may be"))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = data[:error.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise YamlFault(Issue(file, line, column, "",
                              f"not UTF-8 text (byte 0x{data[error.start]:02x}); "
                              f"save the spec as UTF-8")) from None


def parse(text: str, file: str, budget: Budget | None = None) -> Node | None:
    """Parse one YAML document into Nodes; None for a file with no document.

    Values YAML readers disagree on keep their text and carry a ``problem``. Each value
    and key takes one from ``budget.nodes`` (a fresh Budget when None). Raises YamlFault
    for anything that stops reading, TooManyNodes when the budget runs out.
    """
    budget = budget or Budget()
    root: Node | None = None
    # Each open container: [node, pending key text, key line, key column].
    stack: list[list[Any]] = []
    documents = 0

    def fault(mark: Any, message: str) -> YamlFault:
        return YamlFault(Issue(file, mark.line + 1, mark.column + 1, "", message))

    def attach(node: Node, mark: Any) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent[0].value, list):
            parent[0].value.append(node)
        elif parent[1] is None:
            if not isinstance(node.value, str):
                raise fault(mark, "mapping keys must be plain words")
            parent[1], parent[2], parent[3] = node.value, node.line, node.column
        else:
            key, key_line, key_column = parent[1], parent[2], parent[3]
            mapping = parent[0].value
            if key in mapping:
                first = mapping[key]
                raise fault(mark, f"duplicate key {quote(key)} at lines {first.key_line} "
                                  f"and {key_line}; keep one")
            node.key_line, node.key_column = key_line, key_column
            mapping[key] = node
            parent[1] = None

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            mark = event.start_mark
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise fault(mark, "a spec file holds one YAML document; remove the "
                                      "extra '---' section")
            elif isinstance(event, yaml.AliasEvent):
                raise fault(mark, f"YAML aliases (*{clip(event.anchor)}) are not allowed; "
                                  f"use 'extends' or 'defaults' to share settings")
            elif isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent,
                                    yaml.SequenceStartEvent)):
                budget.nodes -= 1
                if budget.nodes < 0:
                    raise TooManyNodes(Issue(file, mark.line + 1, mark.column + 1, "", (
                        f"more than {MAX_NODES:,} values and keys, the most a spec may "
                        f"hold; write shared settings once, under defaults")))
                if event.tag is not None:
                    tag = event.tag.replace("tag:yaml.org,2002:", "!!")
                    raise fault(mark, f"YAML tags ({clip(tag)}) are not allowed")
                if isinstance(event, yaml.ScalarEvent):
                    if event.style is None:
                        value, problem = _plain_scalar(event.value)
                    else:
                        value, problem = event.value, None
                    node = Node(value, file, mark.line + 1, mark.column + 1, problem=problem)
                    attach(node, mark)
                else:
                    if len(stack) >= MAX_DEPTH:
                        raise fault(mark, f"nested deeper than {MAX_DEPTH} levels")
                    empty: dict | list = {} if isinstance(event, yaml.MappingStartEvent) else []
                    node = Node(empty, file, mark.line + 1, mark.column + 1)
                    if stack and isinstance(stack[-1][0].value, dict) and stack[-1][1] is None:
                        raise fault(mark, "mapping keys must be plain words")
                    stack.append([node, None, 0, 0])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                node = stack.pop()[0]
                attach(node, mark)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = _clip_quoted(error.problem or "not valid YAML")
        if error.context:
            message = f"{message} ({_clip_quoted(error.context)})"
        raise YamlFault(Issue(file, mark.line + 1 if mark else 0,
                              mark.column + 1 if mark else 0, "", message)) from None
    except yaml.reader.ReaderError as error:
        before = text[:error.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        raise YamlFault(Issue(file, line, column, "", f"unacceptable character "
                              f"#x{error.character:04x}: {error.reason}")) from None
    except yaml.YAMLError as error:
        raise YamlFault(Issue(file, 0, 0, "", f"not valid YAML: {_clip_quoted(str(error))}"
                              )) from None
    return root


# A quoted piece of file text in PyYAML's messages, as repr() writes it.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _clip_quoted(message: str) -> str:
    """PyYAML's message with each quoted piece of file text (a tag handle, a character)
    cut to MAX_QUOTED characters, and escaped."""
    return _QUOTED.sub(lambda match: match.group()[0] + clip(match.group()[1:-1])
                       + match.group()[0], message)


def json_path(parts) -> str:
    """The JSON path of a sequence of keys and indices: $.blocks[0].convs."""
    path = "$"
    for part in parts:
        path = child_path(path, part)
    return path


def child_path(path: str, key: str | int) -> str:
    """The JSON path of a child: $.blocks[2].filters, or $["odd key"] for odd keys."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def walk(node: Node, path: str = "$"):
    """Yield (JSON path, node) for a node and everything inside it."""
    yield path, node
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            yield from walk(child, child_path(path, key))
    elif isinstance(node.value, list):
        for index, child in enumerate(node.value):
            yield from walk(child, child_path(path, index))


def issue_at(nodes: Mapping[str, Any], source: str, path: str, message: str,
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
