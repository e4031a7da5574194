"""vggspec: define, check, build and look inside VGG-family networks from YAML.

Importing vggspec is light: the spec, planner and diagram never import TensorFlow.
The names below that need Keras, numpy or Pillow are loaded on first use.

>>> import vggspec
>>> vggspec.plan("archs/vgg16.yaml").params
138357544
"""

from importlib import import_module

from .errors import InputError, Issue, SpecError, UsageError
from .plan import Layer, Plan, plan
from .spec import (BatchNorm, Block, Conv, Head, Lrn, Pool, Spec, json_schema, load_spec,
                   spec_from_text)

__version__ = "0.2.0"

_LAZY = {
    "build_model": "builder", "feature_model": "builder",
    "load_weights": "weights", "save_model": "weights",
    "load_image": "features", "preprocess": "features",
    "render_grid": "render", "render_overview": "render",
    "extract_features": "pipeline", "render_diagram": "diagram",
    "export_model": "export",
    "grad_cam": "attribution", "GradCam": "attribution",
    "filter_patterns": "filters",
}

__all__ = [
    "BatchNorm", "Block", "Conv", "Head", "InputError", "Issue", "Layer", "Lrn", "Plan", "Pool", "Spec",
    "SpecError", "UsageError", "json_schema", "load_spec", "plan", "spec_from_text", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vggspec' has no attribute {name!r}")
