"""jsonschema's errors in the user's words: the rule, then what was received.

    jsonschema error --translate--> (JSON path, message, whether it is about the key)

No JSON-Schema jargon reaches a user: "is not valid under any of the given schemas"
becomes "must be a filter count, a conv mapping or a pooling name; got true". Where the
schema carries an ``errorMessage`` (which the YAML language server shows in editors too),
that is the wording.
"""

from __future__ import annotations

from typing import Any, Iterator

from . import _yaml
from .errors import MAX_SHOWN, did_you_mean, quote
from .schema import definition


_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "a string",
               "boolean": "true or false", "array": "a list", "object": "a mapping",
               "null": "null"}


_PATTERN_WORDS = {
    "^[A-Za-z][A-Za-z0-9_.-]*$": "must start with a letter, then letters, digits, '_', "
                                 "'.' or '-'",
    "^[a-z][a-z0-9_]*$": "must be a layer or block name (lower-case letters, digits, '_')",
}


def kind_words(value: Any) -> str:
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


def _branch_title(branch: dict) -> str:
    if "$ref" in branch:
        branch = definition(branch)
    if "title" in branch:
        return branch["title"]
    return _TYPE_WORDS.get(branch.get("type", ""), "something else")


def translate(error, hint=did_you_mean, reported=()) -> Iterator[tuple[str, str, bool]]:
    """Yield (JSON path, message, whether it is about the key) for a jsonschema error,
    in the user's words rather than the schema's; ``hint`` is did_you_mean or a Hints;
    ``reported`` holds paths whose problems were reported while reading the YAML."""
    path, value, rule, limit = _yaml.json_path(error.absolute_path), error.instance, \
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
                    yield from translate(sub, hint, reported)
                return
        for index in range(len(limit)):  # no branch of the right type: try its enum branch
            errors = branches.get(index, [])
            if any(e.validator == "enum" and not e.relative_path for e in errors) and \
                    isinstance(value, str):
                for sub in errors:
                    yield from translate(sub, hint, reported)
                return
        titles = [_branch_title(branch) for branch in limit]
        words = ", ".join(titles[:-1]) + " or " + titles[-1] if len(titles) > 1 else titles[0]
        yield path, f"must be {words}; got {_describe(value)}", False
    elif rule == "type":
        kinds = [limit] if isinstance(limit, str) else limit
        words = " or ".join(_TYPE_WORDS[k] for k in kinds)
        tip = "; null removes a key only at the top level" if value is None else ""
        yield path, f"must be {words}, got {_describe(value)}{tip}", False
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
        words = error.schema.get("errorMessage") or _PATTERN_WORDS.get(limit, f"must match "
                                                                              f"{limit}")
        yield path, f"{words}, got {_describe(value)}", False
    elif rule == "uniqueItems":
        seen = set()
        for index, item in enumerate(value):
            # A mapping or list item (YAML's "? key" in a flow list) is not hashable.
            marker = repr(item) if isinstance(item, (dict, list)) else item
            if marker in seen:
                yield f"{path}[{index}]", f"{_describe(item)} is listed twice", False
            seen.add(marker)
    elif rule == "not":
        words = error.schema.get("errorMessage") or "not allowed here"
        plain = error.schema.get("not") != {} and not isinstance(value, (list, dict))
        shown = f", got {_describe(value)}" if plain else ""
        yield path, f"{words}{shown}", False
    elif rule == "contains":
        # "no conv" only when every item is a pooling name: any other item is a conv or a
        # pooling name written wrongly, and its own error says so.
        reported_inside = any(bad.startswith(path + "[") for bad in reported)
        if "maxContains" in error.schema or (
                all(item in definition("pool_name")["enum"] for item in value)
                and not reported_inside):
            yield path, error.schema.get("errorMessage", "has no item it needs"), False
    elif rule == "dependentRequired":
        for key, needed in limit.items():
            if key in value:
                for other in needed:
                    if other not in value:
                        yield _yaml.child_path(path, key), (
                            f"needs '{other}' too: with a global pooling head, units, "
                            f"dropout and activation describe a classifier"), True
    else:  # a rule this schema does not use; error.message would quote the value whole
        yield path, f"does not meet the schema's {rule!r} rule", False


class Hints:
    """did_you_mean for the first MAX_SHOWN problems (as many as are printed), then
    nothing: thousands of unknown keys or taps cost no more than the lines a user sees."""

    def __init__(self) -> None:
        self.left = MAX_SHOWN

    def __call__(self, word: str, choices) -> str:
        self.left -= 1
        return did_you_mean(word, choices) if self.left >= 0 else ""
