"""The errors vggspec raises for users' mistakes, and the exit codes they map to."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

EXIT_OK = 0
EXIT_INVALID_SPEC = 1
EXIT_UNUSABLE_INPUT = 2


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in a spec: where it stands and what is wrong, in the user's words."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(ValueError):
    """A spec is invalid. ``issues`` lists every problem found, one line each.

    >>> try: vggspec.load_spec("archs/broken.yaml")
    ... except vggspec.SpecError as error: print(error)
    """

    exit_code = EXIT_INVALID_SPEC

    def __init__(self, issues: list[Issue]):
        self.issues = sorted(set(issues))
        super().__init__("\n".join(str(issue) for issue in self.issues))


class InputError(OSError):
    """A file, path, image or weights file cannot be used. The message is one line
    that names the file."""

    exit_code = EXIT_UNUSABLE_INPUT


def did_you_mean(word: str, choices) -> str:
    """"; did you mean 'kernel'?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
