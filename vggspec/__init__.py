"""vggspec: define, check, build and look inside VGG-family networks from YAML.

Importing vggspec is light: the spec, planner and diagram never import TensorFlow.
The builder and feature functions import it when first called.
"""

from .errors import InputError, Issue, SpecError
from .plan import Layer, Plan, plan
from .spec import Block, Conv, Head, Lrn, Pool, Spec, json_schema, load_spec, spec_from_text

__version__ = "0.1.0"

__all__ = [
    "Block", "Conv", "Head", "InputError", "Issue", "Layer", "Lrn", "Plan", "Pool", "Spec",
    "SpecError", "json_schema", "load_spec", "plan", "spec_from_text",
]
