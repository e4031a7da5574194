"""Layer names, derived from positions, in the keras.applications scheme.

This is the one place names are made; the planner, builder, features and tests all
call it, so that published weights load by name and taps mean the same everywhere.
"""

from __future__ import annotations

import re
from typing import Iterable

from .errors import UsageError, did_you_mean, quote

_IN_BLOCK = re.compile(r"(block\d+)_")

# keras.applications leaves these layers auto-named; a fresh session gives them these names.
GLOBAL_POOL_NAMES = {
    "global_avg": "global_average_pooling2d",
    "global_max": "global_max_pooling2d",
}
INPUT_NAME = "input_layer"


def layer_name(block: int | None = None, conv: int | None = None, *,
               fc: int | None = None, suffix: str | None = None,
               pool: bool = False) -> str:
    """Return the Keras layer name for a position in the network.

    >>> layer_name(3, 2), layer_name(3, 2, suffix="bn"), layer_name(1, pool=True)
    ('block3_conv2', 'block3_conv2_bn', 'block1_pool')
    >>> layer_name(fc=1), layer_name(fc=2, suffix="dropout")
    ('fc1', 'fc2_dropout')
    """
    if fc is not None:
        base = f"fc{fc}"
    elif pool:
        base = f"block{block}_pool"
    else:
        base = f"block{block}_conv{conv}"
    return f"{base}_{suffix}" if suffix else base


def block_tap(block: int) -> str:
    """The tap name for the output of a whole block: ``block1`` ... ``blockN``."""
    return f"block{block}"


def tap_targets(layer_names: Iterable[str]) -> dict[str, str]:
    """Every possible tap -> its layer: each layer's own name, and ``blockN`` for the last
    layer named ``blockN_...`` (its pool, or its last conv when it has none)."""
    targets = {}
    for name in layer_names:
        targets[name] = name
        if match := _IN_BLOCK.match(name):
            targets[match.group(1)] = name
    return targets


def resolve_taps(layer_names: Iterable[str], taps: Iterable[str] | None,
                 source: str) -> dict[str, str]:
    """Tap -> layer for each of ``taps`` (default: every block, in order). Raises
    UsageError naming ``source`` for a tap with no layer."""
    targets = tap_targets(layer_names)
    if taps is None:
        taps = [tap for tap in targets if re.fullmatch(r"block\d+", tap)]
    mapping = {}
    for tap in taps:
        if tap not in targets:
            raise UsageError(f"{source}: no layer or block named {quote(tap)}"
                             f"{did_you_mean(tap, sorted(targets))}")
        mapping[tap] = targets[tap]
    return mapping
