"""The errors vggspec raises for users' mistakes, and the exit codes they map to."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

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
        return f"{where}: {clip(self.path, MAX_PATH)}: {message}" if self.path \
            else f"{where}: {message}"


class SpecError(ValueError):
    """A spec is invalid. ``issues`` lists every problem found; ``str()`` prints one per
    line, the first MAX_SHOWN of them, then how many more there are.

    >>> try: vggspec.load_spec("archs/broken.yaml")
    ... except vggspec.SpecError as error: print(error)
    """

    exit_code = EXIT_INVALID_SPEC

    def __init__(self, issues: list[Issue]):
        self.issues = sorted(set(issues))
        lines = [str(issue) for issue in self.issues[:MAX_SHOWN]]
        hidden = len(self.issues) - MAX_SHOWN
        if hidden > 0:
            lines.append(f"{clip(self.issues[0].file, MAX_PATH)}: ... and {hidden:,} more "
                         f"problem{'s' * (hidden != 1)} (the first {MAX_SHOWN} are shown)")
        super().__init__("\n".join(lines))


class InputError(OSError):
    """A file, path, image or weights file cannot be used. The message is one line
    that names the file; any file text in it is escaped (see ``printable``)."""

    exit_code = EXIT_UNUSABLE_INPUT

    def __init__(self, message: str):
        super().__init__(printable(message))


def did_you_mean(word: str, choices) -> str:
    """"; did you mean 'kernel'?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
