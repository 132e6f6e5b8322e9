"""The two kinds of error a user can meet, the exit status each one gives, and the one line
that says which extra to install when an optional module is missing."""

import difflib


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
