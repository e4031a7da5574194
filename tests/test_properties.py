"""Property tests: any text, and any mutation of a valid spec, gives a Spec or a SpecError."""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vggspec
from conftest import ROOT

BASE = yaml.safe_load((ROOT / "archs" / "vgg16.yaml").read_text())
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["max", "avg", "none", "dense", "global_avg", "relu",
                                     "block1", "yes", "010", "1e-3", "valid"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _check(text: str) -> None:
    try:
        spec = vggspec.spec_from_text(text, file="prop.yaml")
    except vggspec.SpecError as error:
        assert error.issues, "a SpecError must carry at least one issue"
        for issue in error.issues:
            assert "\n" not in issue.message
            assert issue.file == "prop.yaml"
        return
    vggspec.plan(spec, max_weight_bytes=None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text_gives_a_spec_or_a_spec_error(text):
    _check(text)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_any_yaml_document_gives_a_spec_or_a_spec_error(value):
    _check(yaml.safe_dump(value))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


PATHS = list(_paths(BASE))[1:]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES, st.booleans()), min_size=1,
                max_size=3))
def test_any_mutation_of_a_valid_spec_gives_a_spec_or_a_spec_error(mutations):
    document = copy.deepcopy(BASE)
    for path, value, delete in mutations:
        parent = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            if delete:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    _check(yaml.safe_dump(document))
