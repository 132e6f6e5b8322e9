"""What tuner knows of a study, written where Optuna's own tools look: its user attributes.

optuna-dashboard, ``optuna studies`` and ``study.user_attrs`` read Optuna's tables alone, not
tuner's. So a new study is given its task, objective and steps, and a study whose
configurations were confirmed, the confirmed winner, the verdict and its p-value; a note says
where the confirmation runs, which are no Optuna trials, are read. tuner reads none of these
back: its own tables hold them, and these are copies for other tools.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from tuner.results import Confirmation

# The settings a reader of the dashboard needs to read a study's values; Optuna shows its
# direction. Few, for each is a write of its own: 20-90 ms on SQLite.
SHOWN = ("task", "metric", "steps")
NOTE = "confirmation"


def describe_study(study: optuna.Study, settings: dict[str, Any]) -> None:
    """Write a new study's task, objective and steps, and the note that no confirmation runs
    are stored yet, as its user attributes."""
    for key in SHOWN:
        study.set_user_attr(key, settings[key])
    name = shlex.quote(study.study_name)
    study.set_user_attr(
        NOTE,
        f"none yet: `tuner confirm {name}` trains the best configurations again with fresh "
        f"seeds, apart from the trials; `tuner report {name}` draws them",
    )


def describe_confirmation(storage_url: str, name: str) -> None:
    """Write the confirmed winner of study ``name``, the verdict and its p-value, and where
    its confirmation runs are read, as the study's user attributes."""
    # Here for start-up time: Optuna and SQLAlchemy.
    import optuna

    from tuner.db import optuna_storage
    from tuner.query import open_results

    with open_results(storage_url) as results:
        shown = confirmation_attrs(results.confirmation(name))
    if not shown:
        return
    storage = optuna_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        for key, value in shown.items():
            study.set_user_attr(key, value)
    finally:
        storage.remove_session()
        storage.engine.dispose()


def confirmation_attrs(confirmation: Confirmation) -> dict[str, Any]:
    """The attributes that say how a study's confirmation came out; none before it has any
    runs."""
    if not confirmation.configs:
        return {}
    winner = confirmation.winner
    quoted = shlex.quote(confirmation.study)
    seeds = max((len(config.runs) for config in confirmation.configs), default=0)
    shown = {
        "confirmed_winner": None,
        "verdict": confirmation.verdict,
        "p_value": confirmation.p_value,
        NOTE: (
            f"{len(confirmation.configs)} {_configurations(len(confirmation.configs))} "
            f"trained again with {seeds} seeds, "
            f"apart from the trials: `tuner confirm {quoted} --format json` lists every run, "
            f"`tuner report {quoted}` draws them"
        ),
    }
    if winner is not None:
        trial = winner.trial
        spread = "" if winner.std is None else f" ± {winner.std:.3g}"
        shown["confirmed_winner"] = (
            f"trial {trial.number}, {trial.optimizer}+{trial.schedule}: mean "
            f"{confirmation.metric} {winner.mean:.4g}{spread} over {len(winner.values)} seeds"
        )
    return shown


def _configurations(count: int) -> str:
    return "configuration" if count == 1 else "configurations"
