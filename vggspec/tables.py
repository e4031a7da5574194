"""A plan as people and programs read it: the summary table, JSON, a one-line repr, HTML.

    Plan --render--> text table | JSON (vggspec.plan/1) | repr | HTML

Plain Python, no TensorFlow: `vggspec summary`, `list` and `diff` start without it.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from .names import block_tap
from .units import format_bytes, format_count, sum_or_none

if TYPE_CHECKING:
    from .plan import Plan

PLAN_FORMAT = "vggspec.plan/1"
SUMMARY_COLUMNS = ("layer", "type", "output", "trainable", "non-trainable", "MACs")
# The first three columns are text (left-aligned), the rest numbers (right-aligned).
TEXT_COLUMNS = 3


def shape_text(shape) -> str:
    """(224, 224, 3), None written as None: how every table shows a shape."""
    return str(tuple(shape))


def summary_rows(p: Plan) -> list[tuple[tuple[str, ...], bool]]:
    """The summary's rows: (cells in SUMMARY_COLUMNS order, is a block subtotal), one per
    layer, with a subtotal after the last layer of each block."""
    rows, layers, blocks = [], list(p.layers), p.block_layers()
    for index, layer in enumerate(layers):
        rows.append(((layer.name, layer.kind, shape_text(layer.output_shape),
                      f"{layer.trainable:,}", f"{layer.non_trainable:,}",
                      format_count(layer.macs)), False))
        following = layers[index + 1] if index + 1 < len(layers) else None
        if layer.block is not None and (following is None or following.block != layer.block):
            block = blocks[layer.block]
            rows.append(((f"  {block_tap(layer.block)} total", "", "",
                          f"{sum(r.trainable for r in block):,}",
                          f"{sum(r.non_trainable for r in block):,}",
                          format_count(sum_or_none(r.macs for r in block))), True))
    return rows


def total_lines(p: Plan) -> list[str]:
    """The lines under the summary table: parameters, MACs, weight and activation memory."""
    activation = p.activation_bytes
    return [
        f"parameters:  {p.params:,}",
        f"  trainable:      {p.trainable:,}",
        f"  non-trainable:  {p.non_trainable:,}"
        + ("  (batch-norm moving statistics)" if p.non_trainable else ""),
        f"MACs:        {format_count(p.macs)} per image (convs and dense layers)",
        f"weights:     {format_bytes(p.weight_bytes)} as float32",
        "activations: " + ("? (open input size)" if activation is None else
                           f"{format_bytes(activation)} per image, float32, all layers"),
    ]


def format_summary(p: Plan) -> str:
    """The summary table (``str(plan)``, ``vggspec summary``): one row per layer
    (parameters split into trainable and non-trainable), a subtotal after each block,
    then totals."""
    rows = [SUMMARY_COLUMNS] + [cells for cells, _ in summary_rows(p)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY_COLUMNS))]
    lines = [f"{p.spec.name}: input {shape_text(p.spec.input_shape)}"]
    for position, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i < TEXT_COLUMNS
                               else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if position == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines + [""] + total_lines(p))


# --- JSON ---------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """A config value as JSON has it: tuples as lists, all the way down."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def plan_dict(p: Plan) -> dict:
    """The plan as plain data, in the format vggspec.plan/1 (see ``Plan.as_dict``)."""
    return {
        "format": PLAN_FORMAT,
        "name": p.spec.name,
        "input_shape": list(p.spec.input_shape),
        "layers": [{
            "name": layer.name,
            "kind": layer.kind,
            "config": _plain(layer.config),
            "output_shape": list(layer.output_shape),
            "params": layer.params,
            "trainable": layer.trainable,
            "non_trainable": layer.non_trainable,
            "macs": layer.macs,
            "block": layer.block,
            "path": layer.path,
        } for layer in p.layers],
        "totals": {
            "params": p.params,
            "trainable": p.trainable,
            "non_trainable": p.non_trainable,
            "macs": p.macs,
            "weight_bytes": p.weight_bytes,
            "activation_bytes": p.activation_bytes,
        },
    }


def plan_json(p: Plan) -> str:
    """``plan_dict`` as JSON text: one line per layer, so it reads and diffs well."""
    data = plan_dict(p)
    lines = ["{"]
    for key, value in data.items():
        if key == "layers":
            rows = [f"    {json.dumps(layer)}" for layer in value]
            text = "[\n" + ",\n".join(rows) + "\n  ]" if rows else "[]"
        else:
            text = json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text},")
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines + ["}"])


# --- repr and HTML (notebooks) --------------------------------------------------------

def plan_repr(p: Plan) -> str:
    """<Plan vgg16: 23 layers, 138,357,544 params, 15.470G MACs, input (224, 224, 3)>"""
    return (f"<Plan {p.spec.name}: {len(p.layers)} layers, {p.params:,} params, "
            f"{format_count(p.macs)} MACs, input {shape_text(p.spec.input_shape)}>")


def plan_html(p: Plan) -> str:
    """The summary as an HTML table (Jupyter shows it for a plan), every text escaped."""
    def cell(tag: str, text: str, number: bool, extra: str = "") -> str:
        style = ' style="text-align: right"' if number else ' style="text-align: left"'
        return f"<{tag}{style}{extra}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", name, i >= TEXT_COLUMNS) for i, name in enumerate(SUMMARY_COLUMNS))
    body = []
    for cells, subtotal in summary_rows(p):
        tag = "th" if subtotal else "td"
        body.append("<tr>" + "".join(cell(tag, text.strip(), i >= TEXT_COLUMNS)
                                     for i, text in enumerate(cells)) + "</tr>")
    totals = "<br>".join(html.escape(line.strip()) for line in total_lines(p))
    return (f'<table class="vggspec-plan">\n'
            f"<caption>{html.escape(p.spec.name)}: input "
            f"{html.escape(shape_text(p.spec.input_shape))}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) +
            f"\n</tbody>\n</table>\n<p>{totals}</p>")
