"""vggspec: define, check, build and look inside VGG-family networks from YAML.

Importing vggspec is light: the spec, planner and diagram never import TensorFlow.
The builder and feature functions import it when first called.
"""

from .errors import InputError, Issue, SpecError
from .plan import Layer, Plan, plan
from .spec import Block, Conv, Head, Lrn, Pool, Spec, load_spec, schema, spec_from_text

__version__ = "0.1.0"

__all__ = [
    "Block", "Conv", "Head", "InputError", "Issue", "Layer", "Lrn", "Plan", "Pool", "Spec",
    "SpecError", "load_spec", "plan", "schema", "spec_from_text",
]
