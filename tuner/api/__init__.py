"""``tuner.api``: the one door to the library for the command line and for Python.

:func:`search` runs a study from a notebook or a script, as ``tuner search`` does, and returns
its :class:`StudyResults`. The command line only parses, calls what is named here and prints
(the import contracts in pyproject.toml check it); what its commands do lives in the modules of
this package, one job each:

- :mod:`tuner.api.study_search`: :func:`search`, for Python.
- :mod:`tuner.api.runner`: ``prepare`` and ``run``, a planned search run with its worker
  processes and then its confirmation runs, and the searches of ``tuner worker`` and
  ``tuner confirm``.
- :mod:`tuner.api.workers`: the worker processes of ``--jobs``, and how many.
- :mod:`tuner.api.study_results`: :class:`StudyResults`.
- :mod:`tuner.api.storage`: the storage operations the commands run (migrate, check, delete).
- :mod:`tuner.api.dashboard`: optuna-dashboard's app on a storage, for reads only.

The names below that bring in SQLAlchemy, Optuna, MLX or an optional extra are imported when
first used (``_LATER``), so that ``tuner --help`` loads none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tuner.api.workers import LOG_TO_ENV, job_count, parse_jobs, watch_lifeline
from tuner.blas import CHOICES as BLAS_CHOICES
from tuner.blas import ENV as BLAS_ENV
from tuner.blas import Blas
from tuner.blas import load as load_blas
from tuner.code import python_code
from tuner.compare import GROUPINGS
from tuner.export import export_trial
from tuner.plan import (
    KEPT_ON_RESUME,
    PRUNERS,
    SAMPLERS,
    SearchConfig,
    parse_confirm,
    parse_names,
    parse_population,
)
from tuner.plugins import KINDS as PLUGIN_KINDS
from tuner.plugins import Registry, load_plugins, refuse_failed
from tuner.query import DEFAULT_STORAGE, SORTS, Results, open_results
from tuner.space import Sample
from tuner.study_file import study_settings, to_toml
from tuner.watcher import Progress, Watcher

if TYPE_CHECKING:
    # The public two, as the API reference (mkdocstrings, which reads this file without running
    # it) and type checkers find them.
    from tuner.api.study_results import StudyResults as StudyResults
    from tuner.api.study_search import search as search

# Each name imported when first asked for, from its module ("module:name" where it is renamed).
_LATER = {
    "search": "tuner.api.study_search",
    "StudyResults": "tuner.api.study_results",
    "confirm_study": "tuner.api.runner",
    "prepare": "tuner.api.runner",
    "run": "tuner.api.runner",
    "worker_config": "tuner.api.runner",
    "SchemaState": "tuner.api.storage",
    "StudyContents": "tuner.api.storage",
    "check": "tuner.api.storage",
    "delete_study": "tuner.api.storage",
    "interrupted_by": "tuner.api.storage",
    "mask_url": "tuner.api.storage",
    "near_study": "tuner.api.storage",
    "read_only_storage": "tuner.api.storage",
    "refuse_shared_over_network": "tuner.api.storage",
    "schema_state": "tuner.api.storage",
    "study_contents": "tuner.api.storage",
    "study_user_attrs": "tuner.api.storage",
    "upgrade": "tuner.api.storage",
    "upgrade_storage": "tuner.api.storage",
    "dashboard_app": "tuner.api.dashboard",
    "parse_log_to": "tuner.trackers",
    "read_search_file": "tuner.search_file:read",
    "schedule_rates": "tuner.lr",
    "schedule_variants": "tuner.lr",
    "warmup_steps": "tuner.lr",
    "check_destination": "tuner.report.files",
    "write_whole": "tuner.report.files",
    "check_kind": "tuner.report.schedule_plot",
    "plot_schedule": "tuner.report.schedule_plot",
    "render_report": "tuner.report.render",
}


def __getattr__(name: str) -> object:
    if name not in _LATER:
        raise AttributeError(f"module 'tuner.api' has no attribute '{name}'")
    module, _, attribute = _LATER[name].partition(":")
    return getattr(importlib.import_module(module), attribute or name)


__all__ = [
    "BLAS_CHOICES",
    "BLAS_ENV",
    "DEFAULT_STORAGE",
    "GROUPINGS",
    "KEPT_ON_RESUME",
    "LOG_TO_ENV",
    "PLUGIN_KINDS",
    "PRUNERS",
    "SAMPLERS",
    "SORTS",
    "Blas",
    "Progress",
    "Registry",
    "Results",
    "Sample",
    "SearchConfig",
    "Watcher",
    "export_trial",
    "job_count",
    "load_blas",
    "load_plugins",
    "open_results",
    "parse_confirm",
    "parse_jobs",
    "parse_names",
    "parse_population",
    "python_code",
    "refuse_failed",
    "study_settings",
    "to_toml",
    "watch_lifeline",
    *_LATER,
]
