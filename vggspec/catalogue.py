"""The shipped specs as a list people read: name, parameters, description.

    archs/*.yaml --plan--> catalogue (name, parameters, description)   `vggspec list`
"""

from __future__ import annotations

import re

from .errors import SpecError, clip
from .extends import shipped_specs
from .plan import plan

MODELINE = "# yaml-language-server:"
# `vggspec list` shows a spec's description cut to this many characters.
MAX_DESCRIPTION = 200


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
