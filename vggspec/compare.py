"""Two plans side by side, layer by layer: what a change to a spec does to the network.

    Plan A, Plan B --diff--> rows (added, removed, changed, unchanged) --format--> text

Layers are matched by name, which the spec's positions determine (block3_conv4 is the
fourth conv of block 3 in both), so a conv added to a block shows as one added row
rather than a cascade of renamed ones. Plain Python, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import clip
from .plan import Layer, Plan
from .tables import shape_text
from .units import format_count

WIDTH = 100
MARKS = {"added": "+", "removed": "-", "changed": "~", "unchanged": " "}
COLUMNS = ("layer", "type", "output", "params change", "MACs change")
# Narrowest a squeezed column gets: layer, type and output.
MINIMUM_WIDTHS = (16, 10, 13)


@dataclass(frozen=True)
class Row:
    """One layer name in either plan. ``status`` is added (only in B), removed (only in
    A), changed (kind, config, output shape, parameters or MACs differ) or unchanged;
    ``changes`` says what differs, in words, for a changed row."""

    name: str
    status: str
    a: Layer | None
    b: Layer | None
    changes: tuple[str, ...] = ()

    @property
    def mark(self) -> str:
        """+, -, ~ or a space, as diff marks lines."""
        return MARKS[self.status]

    @property
    def params_change(self) -> int:
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs_change(self) -> int | None:
        """B's MACs less A's; None where either is unknown (an open input size)."""
        before = self.a.macs if self.a else 0
        after = self.b.macs if self.b else 0
        return None if before is None or after is None else after - before


def _aligned(a: Plan, b: Plan) -> list[tuple[Layer | None, Layer | None]]:
    """Pairs in A's order, each layer only B has placed just before the next layer the
    two share (as B has it), so that, as in diff, removed rows come before added ones."""
    a_names = {layer.name for layer in a.layers}
    b_by_name = {layer.name: layer for layer in b.layers}
    before: dict[str | None, list[Layer]] = {}
    pending: list[Layer] = []
    for layer in b.layers:
        if layer.name in a_names:
            before.setdefault(layer.name, []).extend(pending)
            pending = []
        else:
            pending.append(layer)
    pairs: list[tuple[Layer | None, Layer | None]] = []
    for layer in a.layers:
        pairs.extend((None, added) for added in before.get(layer.name, ()))
        pairs.append((layer, b_by_name.get(layer.name)))
    pairs.extend((None, added) for added in pending)
    return pairs


def _value(value) -> str:
    if isinstance(value, (tuple, list)):
        return str(tuple(value))
    return "(none)" if value is None else str(value)


def _changes(a: Layer, b: Layer, a_input, b_input) -> tuple[str, ...]:
    """What differs between two layers of the same name, in words."""
    changes = []
    if a.kind != b.kind:
        changes.append(f"type {a.kind} -> {b.kind}")
    for key in sorted(set(a.config) | set(b.config)):
        before, after = a.config.get(key), b.config.get(key)
        if before != after:
            changes.append(f"{key} {_value(before)} -> {_value(after)}")
    if a.output_shape != b.output_shape:
        changes.append(f"output {shape_text(a.output_shape)} -> {shape_text(b.output_shape)}")
    if changes or (a.params == b.params and a.macs == b.macs):
        return tuple(changes)
    # Only the figures differ: the layer is the same but its input is not.
    if a_input != b_input:
        return (f"input {shape_text(a_input)} -> {shape_text(b_input)}",)
    return ("parameters or MACs",)


def diff_plans(a: Plan, b: Plan) -> list[Row]:
    """Align two plans by layer name: A's order, with the layers only B has inserted
    where B has them. One Row per layer name.

    >>> rows = diff_plans(plan("archs/vgg16.yaml"), plan("archs/vgg19.yaml"))
    >>> [row.name for row in rows if row.status == "added"]
    ['block3_conv4', 'block4_conv4', 'block5_conv4']
    """
    inputs = {}
    for side, layout in (("a", a), ("b", b)):
        previous = ()
        for layer in layout.layers:
            inputs[side, layer.name] = previous
            previous = layer.output_shape
    rows = []
    for left, right in _aligned(a, b):
        if left is None:
            rows.append(Row(right.name, "added", None, right))
        elif right is None:
            rows.append(Row(left.name, "removed", left, None))
        else:
            changes = _changes(left, right, inputs["a", left.name], inputs["b", right.name])
            rows.append(Row(left.name, "changed" if changes else "unchanged", left, right,
                            changes))
    return rows


def _signed(value: int | None, counted: bool = False) -> str:
    """+5,309,696 or -1.850G; 0 for no change, ? for unknown."""
    if value is None:
        return "?"
    if value == 0:
        return "0"
    sign = "+" if value > 0 else "-"
    return sign + (format_count(abs(value)) if counted else f"{abs(value):,}")


def _middle(text: str, width: int) -> str:
    """A name cut in the middle, keeping both ends: block12_con...10_relu."""
    text = clip(text, 10 ** 6)
    if len(text) <= width:
        return text
    head = (width - 3 + 1) // 2
    return text[:head] + "..." + text[len(text) - (width - 3 - head):]


def _cells(row: Row) -> tuple[str, ...]:
    layer = row.b or row.a
    if row.status == "unchanged":
        params = macs = ""
    else:
        params, macs = _signed(row.params_change), _signed(row.macs_change, counted=True)
    return (layer.name, layer.kind, shape_text(layer.output_shape), params, macs)


def _widths(table: list[tuple[str, ...]], width: int) -> list[int]:
    """Each column's width: its widest cell, with layer, type and output narrowed (in
    that order of sacrifice: type, layer, output) until a row fits in ``width``."""
    widths = [max(len(cells[i]) for cells in table) for i in range(len(COLUMNS))]
    for column in (1, 0, 2):
        over = 2 + sum(widths) + 2 * (len(widths) - 1) - width
        if over > 0:
            floor = min(MINIMUM_WIDTHS[column], widths[column])
            widths[column] = max(floor, widths[column] - over)
    return widths


def _total(label: str, before: int | None, after: int | None, counted: bool) -> str:
    shown = format_count if counted else "{:,}".format
    if before is None or after is None:
        change = "?"
        text = f"{'?' if before is None else shown(before)} -> " \
               f"{'?' if after is None else shown(after)}"
    else:
        change = _signed(after - before, counted)
        text = f"{shown(before)} -> {shown(after)}"
    return f"{label}{text} ({change})"


def format_diff(a: Plan, b: Plan, *, changed_only: bool = False, width: int = WIDTH) -> str:
    """The diff as text no wider than ``width``: a row per layer marked + (only in B),
    - (only in A), ~ (changed: what changed on the line below) or blank, with the change
    in parameters and MACs, then the totals. ``changed_only`` leaves out unchanged rows.

    >>> print(format_diff(plan("archs/vgg16.yaml"), plan("archs/vgg19.yaml"),
    ...                   changed_only=True))
    --- vgg16: archs/vgg16.yaml
    +++ vgg19: archs/vgg19.yaml
      layer         type    output         params change  MACs change
    -----------------------------------------------------------------
    + block3_conv4  Conv2D  (56, 56, 256)       +590,080      +1.850G
    + block4_conv4  Conv2D  (28, 28, 512)     +2,359,808      +1.850G
    + block5_conv4  Conv2D  (14, 14, 512)     +2,359,808    +462.422M
    <BLANKLINE>
    layers:      23 -> 26: 3 added, 0 removed, 0 changed
    parameters:  138,357,544 -> 143,667,240 (+5,309,696)
    MACs:        15.470G -> 19.632G (+4.162G)
    """
    rows = diff_plans(a, b)
    shown = [row for row in rows if row.status != "unchanged" or not changed_only]
    table = [COLUMNS] + [_cells(row) for row in shown]
    widths = _widths(table, width)

    def line(mark: str, cells: tuple[str, ...]) -> str:
        fitted = [_middle(cells[0], widths[0]), clip(cells[1], widths[1]),
                  clip(cells[2], widths[2])]
        text = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(fitted))
        numbers = "  ".join(cell.rjust(widths[i + 3]) for i, cell in enumerate(cells[3:]))
        return f"{mark} {text}  {numbers}".rstrip()

    lines = [clip(f"--- {a.spec.name}: {a.spec.source}", width),
             clip(f"+++ {b.spec.name}: {b.spec.source}", width),
             line(" ", table[0])]
    lines.append("-" * len(lines[-1]))
    for row, cells in zip(shown, table[1:]):
        lines.append(line(row.mark, cells))
        if row.changes:
            lines.append(clip("      " + "; ".join(row.changes), width))
    if not shown:
        lines.append("  (no layer differs)")
    counts = {status: sum(row.status == status for row in rows) for status in MARKS}
    lines += [
        "",
        f"layers:      {len(a.layers)} -> {len(b.layers)}: {counts['added']} added, "
        f"{counts['removed']} removed, {counts['changed']} changed",
        _total("parameters:  ", a.params, b.params, counted=False),
        _total("MACs:        ", a.macs, b.macs, counted=True),
    ]
    return "\n".join(lines)
