"""The errors vggspec raises for users' mistakes, and the exit codes they map to."""

from __future__ import annotations

import bisect
import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache

EXIT_OK = 0
EXIT_INVALID_SPEC = 1
EXIT_UNUSABLE_INPUT = 2

# Text from files (keys, values, file names) is quoted at most this long...
MAX_QUOTED = 40
# ...a JSON path and a whole message at most this long...
MAX_PATH = 120
MAX_MESSAGE = 600
# ...and a SpecError prints at most this many problems; the rest are counted.
MAX_SHOWN = 50
# "did you mean" compares a word of at most this many characters (no name vggspec makes is
# longer) with every choice when there are at most MAX_SUGGEST_CHOICES (the names of any
# shipped spec), and otherwise with the MAX_SUGGEST_NEAREST nearest in spelling order,
# forwards and backwards: its cost is bounded however many layers a spec makes.
MAX_SUGGEST_WORD = 64
MAX_SUGGEST_CHOICES = 128
MAX_SUGGEST_NEAREST = 32


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on escaped (control characters,
    newlines, bidirectional overrides: ``\\x1b``, ``\\n``, ``\\u202e``), so a message
    stays one line and file text cannot drive the terminal.

    >>> printable("a\\nb\\x1b[31m")
    'a\\\\nb\\\\x1b[31m'
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` cut to ``limit`` characters, the cut shown as '...'; escaped for printing."""
    text = printable(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def quote(text: str, limit: int = MAX_QUOTED) -> str:
    """A piece of file text as it appears in a message: 'short, escaped, in quotes'."""
    return f"'{clip(str(text), limit)}'"


# One step of a JSON path: $, .name, [3] or ["any key"].
_PATH_STEP = re.compile(r'\$|\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\]|\["(?:[^"\\]|\\.)*"\]')


def _clip_key(key: str) -> str:
    """A key as written inside ["..."]: JSON-escaped, cut to MAX_QUOTED characters."""
    shown = ""
    for char in key:
        escaped = json.dumps(char)[1:-1]
        if len(shown) + len(escaped) > MAX_QUOTED - 3:
            return shown + "..."
        shown += escaped
    return shown


def clip_path(path: str, limit: int = MAX_PATH) -> str:
    """A JSON path as it appears in a message: each key cut to MAX_QUOTED characters,
    the whole to ``limit``, escaped for printing.

    >>> clip_path('$.' + 'k' * 50 + '[0]')
    '$.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...[0]'
    """
    steps, end = [], 0
    for match in _PATH_STEP.finditer(path):
        if match.start() != end:
            break
        end, step = match.end(), match.group()
        if step.startswith(".") and len(step) > MAX_QUOTED + 1:
            step = "." + clip(step[1:])
        elif step.startswith('["'):
            step = f'["{_clip_key(json.loads(step[1:-1]))}"]'
        steps.append(step)
    return clip("".join(steps) + path[end:], limit)


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in a spec: where it stands and what is wrong, in the user's words."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        file = clip(self.file, MAX_PATH)
        where = f"{file}:{self.line}:{self.column}" if self.line else file
        message = clip(self.message, MAX_MESSAGE)
        return f"{where}: {clip_path(self.path)}: {message}" if self.path \
            else f"{where}: {message}"


class SpecError(ValueError):
    """A spec is invalid. ``issues`` lists every problem found; ``str()`` prints one per
    line, the first MAX_SHOWN of them, then how many more there are, then, when
    ``skipped`` says why, a note that the checks needing the layers did not run.

    >>> try: vggspec.load_spec("tests/invalid/lrn_even.yaml")
    ... except vggspec.SpecError as error: print(error)
    tests/invalid/lrn_even.yaml:4:15: $.defaults.lrn.size: must be odd (a window centred on each channel), got 4
    tests/invalid/lrn_even.yaml: note: the checks that need the layers (input size, taps) did not run: $.defaults has problems
    """

    exit_code = EXIT_INVALID_SPEC

    def __init__(self, issues: list[Issue], skipped: str | None = None):
        self.issues = sorted(set(issues))
        self.skipped = skipped
        lines = [str(issue) for issue in self.issues[:MAX_SHOWN]]
        hidden = len(self.issues) - MAX_SHOWN
        file = clip(self.issues[0].file, MAX_PATH) if self.issues else "<spec>"
        if hidden > 0:
            lines.append(f"{file}: ... and {hidden:,} more problem{'s' * (hidden != 1)} "
                         f"(the first {MAX_SHOWN} are shown)")
        if skipped:
            lines.append(f"{file}: note: the checks that need the layers (input size, "
                         f"taps) did not run: {skipped}")
        super().__init__("\n".join(lines))


class InputError(OSError):
    """A file, path, image or weights file cannot be used. The message is one line
    that names the file, at most MAX_MESSAGE characters; any file text in it is escaped
    (see ``printable``)."""

    exit_code = EXIT_UNUSABLE_INPUT

    def __init__(self, message: str):
        super().__init__(clip(message, MAX_MESSAGE))


# A message about weights that do not fit lists at most this many layers, then counts.
MAX_LISTED = 5


def listed(names) -> str:
    """'a', 'b', 'c', 'd', 'e' and 3 more: names quoted, at most MAX_LISTED of them."""
    names = list(names)
    shown = ", ".join(quote(str(name)) for name in names[:MAX_LISTED])
    hidden = len(names) - MAX_LISTED
    return shown + (f" and {hidden:,} more" if hidden > 0 else "")


def format_shapes(shapes) -> str:
    """(3,3,3,64) (64,): a layer's weight shapes, compactly."""
    return " ".join(str(tuple(s)).replace(" ", "") for s in shapes)


def list_problems(head: str, problems: list[str]) -> str:
    """``head`` and the first few problems, as many as fit in one message, then how many
    more there are (so that the count survives InputError's length cap)."""
    for shown in range(min(len(problems), MAX_LISTED), 0, -1):
        hidden = len(problems) - shown
        more = [f"and {hidden:,} more layer{'s' * (hidden != 1)}"] if hidden else []
        message = head + "; ".join(problems[:shown] + more)
        if shown == 1 or len(printable(message)) <= MAX_MESSAGE:
            return message
    return head


def settle_mismatches(head: str, problems: list[str], any_fit: bool,
                      skipped: list[str] | None) -> None:
    """The end of matching weights to a model: with problems, refuse everything (an
    InputError that starts with ``head``), unless this is a partial load (``skipped`` is
    a list) and some layer fits, when the problems are noted in ``skipped`` instead."""
    if problems and (skipped is None or not any_fit):
        tail = ", not one layer fits, nothing loaded: " if skipped is not None \
            else ", nothing loaded: "
        raise InputError(list_problems(head + tail, problems))
    if skipped is not None:
        skipped += problems


class UsageError(ValueError):
    """An argument that does not fit: a tap the network lacks, a preprocessing its
    channels cannot take, a shipped spec that does not exist. Not about a file, so not
    an OSError; the CLI exits 2 for it, as for any usage error. One escaped line."""

    exit_code = EXIT_UNUSABLE_INPUT

    def __init__(self, message: str):
        super().__init__(clip(message, MAX_MESSAGE))


def did_you_mean(word: str, choices) -> str:
    """"; did you mean 'kernel'?" for the closest choice, or "" when none is close (or
    ``word`` is longer than any name: MAX_SUGGEST_WORD).

    >>> did_you_mean("kernal", ["kernel", "padding"])
    "; did you mean 'kernel'?"
    """
    if not isinstance(word, str) or not word or len(word) > MAX_SUGGEST_WORD:
        return ""
    close = difflib.get_close_matches(word, _candidates(word, tuple(choices)), n=1,
                                      cutoff=0.6)
    return f"; did you mean {quote(close[0])}?" if close else ""


def _candidates(word: str, choices: tuple[str, ...]) -> list[str]:
    """All choices when they are few; else the MAX_SUGGEST_NEAREST nearest in spelling
    order, forwards (a typo near the end) and backwards (a typo near the start)."""
    if len(choices) <= MAX_SUGGEST_CHOICES:
        return list(choices)
    forwards, backwards = _spelling_orders(choices)
    reach = MAX_SUGGEST_NEAREST // 4
    at = bisect.bisect_left(forwards, word)
    near = set(forwards[max(0, at - reach):at + reach])
    at = bisect.bisect_left(backwards, word[::-1])
    near.update(name[::-1] for name in backwards[max(0, at - reach):at + reach])
    return sorted(near)


@lru_cache(maxsize=8)
def _spelling_orders(choices: tuple[str, ...]) -> tuple[list[str], list[str]]:
    names = sorted({name for name in choices if len(name) <= MAX_SUGGEST_WORD})
    return names, sorted(name[::-1] for name in names)
