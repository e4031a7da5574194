"""The spec's JSON Schema, shipped as package data, and the defaults it defines.

    vggspec.schema.json --json_schema--> dict --defaults/validator--> checks

Every default a spec can leave out is written in the schema and read from it here, so
editors, `vggspec schema` users and the dataclasses cannot disagree.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def json_schema() -> dict:
    """The spec's JSON Schema (Draft 2020-12), as shipped in vggspec/schema/."""
    text = resources.files(__name__).joinpath("vggspec.schema.json").read_text("utf-8")
    return json.loads(text)


def definition(name: str) -> dict:
    """``$defs/<name>``; a ``{"$ref": ...}`` is followed the same way."""
    if isinstance(name, dict):
        name = name["$ref"].rsplit("/", 1)[-1]
    return json_schema()["$defs"][name]


def defaults_of(subschema: dict) -> dict:
    """{property: default} for every property of ``subschema`` that has one."""
    return {key: prop["default"] for key, prop in subschema.get("properties", {}).items()
            if isinstance(prop, dict) and "default" in prop}


def conv_defaults() -> dict:
    """The conv settings a spec's ``defaults`` start from (kernel, padding, ...)."""
    return defaults_of(json_schema()["properties"]["defaults"])


def batch_norm_defaults() -> dict:
    """epsilon and momentum of ``batch_norm: true``: Keras' own."""
    return defaults_of(definition("batch_norm")["oneOf"][1])


def lrn_defaults() -> dict:
    return defaults_of(definition("lrn"))


def pool_defaults() -> dict:
    return defaults_of(definition("pool")["oneOf"][1])


def train_defaults() -> dict:
    """The training settings a spec without a ``train`` section gets."""
    return defaults_of(definition("train"))


def augment_defaults() -> dict:
    return defaults_of(definition("train")["properties"]["augment"])


def head_defaults(head_type: str) -> dict:
    """The defaults of a head of ``head_type``, from the branch of the schema for it."""
    out = defaults_of(definition("head"))
    for branch in definition("head").get("allOf", []):
        condition = branch["if"]["properties"]["type"]
        if head_type == condition.get("const") or head_type in condition.get("enum", ()):
            out.update(defaults_of(branch["then"]))
    return out


@lru_cache(maxsize=1)
def validator():
    """A Draft 2020-12 validator for the schema, strict about integers."""
    import jsonschema
    from jsonschema import validators

    # JSON Schema counts 16.0 as an integer; a filter count of 16.0 is a typo to report.
    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    strict = validators.extend(jsonschema.Draft202012Validator, type_checker=checker)
    return strict(json_schema())
