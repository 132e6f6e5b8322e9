"""tuner: find the best optimizer and learning-rate schedule for an MLX model.

The plugin API lives here: ``hookimpl``, the specs a plugin registers, and the parameter types
of a search space; so do ``search``, which runs a study, and ``open_results``, which reads one.
Importing it arranges for MLX, whoever imports it next, to load on the faster BLAS (see
:mod:`tuner.blas`).
"""

from tuner import blas
from tuner.export import build_optimizer, eval_weights
from tuner.hookspecs import hookimpl
from tuner.params import Choice, Float, Int, Open
from tuner.query import Results, open_results
from tuner.results import (
    Comparison,
    Counts,
    GroupStats,
    Outcome,
    Provenance,
    StudySummary,
    TrialDetail,
    TrialSummary,
)
from tuner.specs import Default, Metric, OptimizerSpec, ScheduleSpec, Task, TaskSpec

__version__ = "0.1.0"

# None of the imports above loads MLX: a notebook's `import mlx` after `import tuner` comes first.
blas.load_with_mlx()


def __getattr__(name: str) -> object:
    # tuner.search brings in Optuna, SQLAlchemy and MLX: the command line, which imports this
    # package first, pays for them only when it runs a search.
    if name in ("search", "StudyResults"):
        from tuner import api

        return getattr(api, name)
    raise AttributeError(f"module 'tuner' has no attribute '{name}'")


__all__ = [
    "Choice",
    "Comparison",
    "Counts",
    "Default",
    "Float",
    "GroupStats",
    "Int",
    "Metric",
    "Open",
    "OptimizerSpec",
    "Outcome",
    "Provenance",
    "Results",
    "ScheduleSpec",
    "StudyResults",
    "StudySummary",
    "Task",
    "TaskSpec",
    "TrialDetail",
    "TrialSummary",
    "build_optimizer",
    "eval_weights",
    "hookimpl",
    "open_results",
    "search",
]
