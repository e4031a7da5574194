"""Load a YAML spec, check its fields, and return it as frozen dataclasses.

    YAML text --extends--> merged tree --fields--> Spec        (this module)
    Spec --plan--> layers, and the checks that need them        (vggspec.plan)

The work is split by job: ``extends`` reads files and merges bases, ``fields`` checks
the merged tree against the schema and the rules the schema cannot say, and
``schema_words`` puts jsonschema's errors in the user's words. The planner imports this
module, never the reverse. No TensorFlow here: `vggspec validate` starts in a fraction
of a second.
"""

from __future__ import annotations

import os

from .errors import SpecError
from .extends import MAX_EXTENDS_DEPTH, SPEC_SUFFIXES, shipped_archs, tree_from_file, \
    tree_from_text
from .fields import check_fields
from .schema import json_schema
from .spec_types import BatchNorm, Block, Conv, Head, Lrn, Pool, Spec

__all__ = ["BatchNorm", "Block", "Conv", "Head", "Lrn", "MAX_EXTENDS_DEPTH", "Pool",
           "SPEC_SUFFIXES", "Spec", "check_spec", "json_schema", "load_spec",
           "shipped_archs", "spec_from_text"]


def check_spec(path: str | os.PathLike | None = None, *, text: str | None = None,
               file: str = "<text>", base_dir: str | os.PathLike = "."):
    """(Spec or None, every problem in its fields, why the planner's checks cannot run or
    None), for a file or for YAML ``text``. The planner uses this to report every
    problem of a spec in one run. Raises SpecError only for a file that cannot be parsed,
    InputError for one that cannot be read."""
    tree = tree_from_file(path) if text is None else tree_from_text(text, file, base_dir)
    return check_fields(*tree)


def _spec_or_raise(result) -> Spec:
    spec, issues, skipped = result
    if issues:
        raise SpecError(issues, skipped)
    return spec


def load_spec(path: str | os.PathLike) -> Spec:
    """Read, merge (``extends``) and check the fields of a spec file.

    Raises SpecError listing every problem with its file, line, column and JSON path,
    or InputError when the file itself cannot be read. Checks that need the layers
    (an input too small for its pools, taps that name no layer) are the planner's:
    ``vggspec.plan`` runs both and reports every problem at once.

    >>> spec = load_spec("archs/vgg16.yaml")
    >>> [len(b.convs) for b in spec.blocks]
    [2, 2, 3, 3, 3]
    """
    return _spec_or_raise(check_spec(path))


def spec_from_text(text: str, file: str = "<text>", base_dir: str | os.PathLike = ".") -> Spec:
    """Check the fields of a spec given as YAML text; ``extends`` paths are relative to
    ``base_dir``.

    >>> spec_from_text("name: x\\ninput: {shape: [32, 32, 3]}\\nblocks: [[8, max]]\\n"
    ...                "head: {type: none}").blocks[0].convs[0].filters
    8
    """
    return _spec_or_raise(check_spec(text=text, file=file, base_dir=base_dir))
