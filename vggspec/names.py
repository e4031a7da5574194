"""Layer names, derived from positions, in the keras.applications scheme.

This is the one place names are made; the planner, builder, features and tests all
call it, so that published weights load by name and taps mean the same everywhere.
"""

from __future__ import annotations

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
