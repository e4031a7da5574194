"""A plan as people and programs read it: the summary table, JSON, a one-line repr, HTML;
and the list of shipped specs.

    Plan --render--> text table | JSON (vggspec.plan/1) | repr | HTML
    archs/*.yaml --plan--> catalogue (name, parameters, description)

Plain Python, no TensorFlow: `vggspec summary`, `list` and `diff` start without it.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from .errors import clip
from .names import block_tap
from .plan import Plan, _count, _sum_or_none, format_bytes

PLAN_FORMAT = "vggspec.plan/1"
SUMMARY_COLUMNS = ("layer", "type", "output", "trainable", "non-trainable", "MACs")
# The first three columns are text (left-aligned), the rest numbers (right-aligned).
TEXT_COLUMNS = 3
MODELINE = "# yaml-language-server:"
# `vggspec list` shows a spec's description cut to this many characters.
MAX_DESCRIPTION = 200


def shape_text(shape) -> str:
    """(224, 224, 3), None written as None: how every table shows a shape."""
    return str(tuple(shape))


def summary_rows(p: Plan) -> list[tuple[tuple[str, ...], bool]]:
    """The summary's rows: (cells in SUMMARY_COLUMNS order, is a block subtotal), one per
    layer, with a subtotal after the last layer of each block."""
    rows = []
    layers = list(p.layers)
    for index, layer in enumerate(layers):
        rows.append(((layer.name, layer.kind, shape_text(layer.output_shape),
                      f"{layer.trainable:,}", f"{layer.non_trainable:,}",
                      _count(layer.macs)), False))
        following = layers[index + 1] if index + 1 < len(layers) else None
        if layer.block is not None and (following is None or following.block != layer.block):
            block = [row for row in layers if row.block == layer.block]
            rows.append(((f"  {block_tap(layer.block)} total", "", "",
                          f"{sum(r.trainable for r in block):,}",
                          f"{sum(r.non_trainable for r in block):,}",
                          _count(_sum_or_none(r.macs for r in block))), True))
    return rows


def total_lines(p: Plan) -> list[str]:
    """The lines under the summary table: parameters, MACs, weight and activation memory."""
    activation = p.activation_bytes
    return [
        f"parameters:  {p.params:,}",
        f"  trainable:      {p.trainable:,}",
        f"  non-trainable:  {p.non_trainable:,}"
        + ("  (batch-norm moving statistics)" if p.non_trainable else ""),
        f"MACs:        {_count(p.macs)} per image (convs and dense layers)",
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
            f"{_count(p.macs)} MACs, input {shape_text(p.spec.input_shape)}>")


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


# --- the shipped specs ----------------------------------------------------------------

def shipped_specs() -> dict[str, Path]:
    """Name -> file of every shipped spec (archs/*.yaml), sorted by name."""
    from .spec import shipped_archs

    return {path.stem: path for path in sorted(shipped_archs().glob("*.yaml"))
            if path.is_file()}


def first_comment(text: str) -> str:
    """The first sentence of the comment that opens a spec, after any yaml-language-server
    modeline: the one-line description each shipped spec starts with ('' if none). The
    comment may wrap over several lines; a blank line or the first key ends it.

    >>> first_comment("# yaml-language-server: ...\\n# VGG11, configuration A: 8\\n"
    ...               "# convs. More here.\\nname: vgg11\\n")
    'VGG11, configuration A: 8 convs.'
    """
    words: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not words and (not stripped or stripped.startswith(MODELINE)):
            continue
        content = stripped.lstrip("#").strip()
        if not stripped.startswith("#") or not content:
            break
        words.append(content)
    paragraph = " ".join(words)
    sentence = re.match(r"(.+?[.!?])(?=\s|$)", paragraph)
    return sentence.group(1) if sentence else paragraph


def catalogue() -> list[tuple[str, int | None, str]]:
    """(name, parameters, description) of each shipped spec. The description is the
    spec's ``description``, else its first comment line; parameters are None, and the
    description the first problem, for a spec that does not plan."""
    from .errors import SpecError
    from .plan import plan

    entries = []
    for name, path in shipped_specs().items():
        try:
            layout = plan(path, None)
        except SpecError as error:
            first = error.issues[0].message if error.issues else str(error)
            entries.append((name, None, f"invalid: {first}"))
            continue
        description = layout.spec.description or first_comment(
            path.read_text(encoding="utf-8", errors="replace"))
        entries.append((name, layout.params, clip(" ".join(description.split()),
                                                  MAX_DESCRIPTION)))
    return entries


def _cut_at_word(text: str, room: int) -> str:
    """``text`` in at most ``room`` characters, cut after a whole word, the cut shown as
    '...'."""
    if len(text) <= room:
        return text
    cut = max(room - 3, 0)
    kept = text[:cut]
    if text[cut] not in " ,;:.)" and " " in kept:
        kept = kept.rsplit(" ", 1)[0]
    return kept.rstrip(" ,;:") + "..."


def format_catalogue(entries: list[tuple[str, int | None, str]], width: int = 100) -> str:
    """Aligned lines, no wider than ``width``: name, parameter count, description (cut
    after a whole word where it would not fit)."""
    counts = ["invalid" if params is None else f"{params:,}" for _, params, _ in entries]
    name_width = max((len(name) for name, _, _ in entries), default=0)
    count_width = max((len(count) for count in counts), default=0)
    room = max(width - name_width - count_width - 4, 20)
    return "\n".join(f"{name.ljust(name_width)}  {count.rjust(count_width)}  "
                     f"{_cut_at_word(text, room)}".rstrip()
                     for (name, _, text), count in zip(entries, counts))
