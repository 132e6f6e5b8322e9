"""The two kinds of error a user can meet, the exit status each one gives, the names an error
suggests for one mistyped, and the one line that says which extra to install when an optional
module is missing."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class TunerError(Exception):
    """Something failed; the command exits with status 1 and this one-line message."""

    exit_code = 1


class BadInput(TunerError):
    """The user asked for something that cannot be; the command exits with status 2."""

    exit_code = 2


def did_you_mean(name: str, known: object) -> str:
    """Return ' (did you mean X?)' for the nearest known name, or a list of the known ones."""
    names = sorted(str(k) for k in known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    close = close or [k for k in names if k.startswith(name) or name.startswith(k)][:1]
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; known: {', '.join(names)}" if names else ""


# A name shorter than this is never taken for a typo: one edit of "a" is any other letter.
SHORT_NAME = 4
# A name this long or longer is taken for a typo of one two edits away, as tuner's own names
# (task-word-animal) are: "lemon" for "lemur" is two.
LONG_NAME = 12


def typo_of(typed: str, known: Sequence[str]) -> str | None:
    """The name of ``known`` that ``typed`` most likely misspells: one edit away (a character
    added, dropped, changed, or two neighbours swapped), two for a long name; None when none
    is, or when the names differ only in their digits, as a numbered series does; None for a
    name too short to tell."""
    if len(typed) < SHORT_NAME:
        return None
    reach = 2 if len(typed) >= LONG_NAME else 1
    near = [(_edits(typed, name), name) for name in known if name != typed]
    near = [(n, name) for n, name in near if n <= reach and not _digits_apart(typed, name)]
    return min(near)[1] if near else None


def _edits(a: str, b: str) -> int:
    """The edits that turn ``a`` into ``b``: characters added, dropped, changed, and
    neighbours swapped (the optimal string alignment distance)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _digits_apart(a: str, b: str) -> bool:
    def letters(name: str) -> str:
        return "".join(c for c in name if not c.isdigit())

    return a != b and letters(a) == letters(b)


# The optional modules, each with the package that brings it and tuner's extra that installs it.
EXTRAS = {
    "plotly": ("plotly", "report"),
    "matplotlib": ("matplotlib", "report"),
    "optuna_dashboard": ("optuna-dashboard", "dashboard"),
    "mlflow": ("mlflow-skinny", "mlflow"),
    "wandb": ("wandb", "wandb"),
}


def missing_extra(error: ModuleNotFoundError, needed_by: str) -> Exception:
    """One line that names the extra to install, when ``error`` is about a module of one;
    ``error`` itself otherwise."""
    module = (error.name or "").partition(".")[0]
    if module not in EXTRAS:
        return error
    package, extra = EXTRAS[module]
    return TunerError(f"{needed_by} needs {package}: pip install 'tuner[{extra}]'")
