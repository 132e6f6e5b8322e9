"""Each trial of a search logged to an experiment tracker that people already run, MLflow or
Weights & Biases: its parameters, its learning curve and how it ended, through the tracker's own
package (an optional extra), by an Optuna study callback.

``tuner search --log-to mlflow[:URI]`` and ``--log-to wandb[:PROJECT]`` make one with
:func:`tracker`; ``tuner.search(callbacks=[tracker("mlflow:URI", storage)])`` does the same in
a script. The curve is tuner's record of the trial, read back from ``storage`` once the trial
is stored: Optuna's trial holds only the evaluations of the metric the study optimises.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.errors import BadInput, TunerError, did_you_mean, missing_extra
from tuner.query import open_results
from tuner.results import Outcome

if TYPE_CHECKING:
    import optuna

    from tuner.results import TrialDetail

# The trackers, each named as its package's module and tuner's extra that installs it.
TRACKERS = ("mlflow", "wandb")
# MLflow's limit on the metrics of one log_batch call.
MLFLOW_BATCH = 1000


@dataclass(frozen=True)
class Destination:
    """Where trials go: ``tracker`` is ``mlflow`` or ``wandb``, ``where`` its tracking URI or
    project, None for the tracker's own default (``MLFLOW_TRACKING_URI``, ``WANDB_PROJECT``)."""

    tracker: str
    where: str | None = None

    def __str__(self) -> str:
        return self.tracker if self.where is None else f"{self.tracker}:{self.where}"


def parse_log_to(value: str) -> Destination:
    """``--log-to``'s value, checked: a known tracker (BadInput) whose package is installed
    (TunerError, as for every missing extra); imports nothing (the trackers' packages take
    seconds to import)."""
    name, _, where = value.strip().partition(":")
    if name not in TRACKERS:
        raise BadInput(f"--log-to '{value}': no tracker '{name}'{did_you_mean(name, TRACKERS)}")
    if importlib.util.find_spec(name) is None:
        raise missing_extra(ModuleNotFoundError(name=name), f"--log-to {name}")
    return Destination(name, where.strip() or None)


# Logs one stored trial of a study (its name given) to a tracker.
Log = Callable[[str, "TrialDetail"], None]


def tracker(
    log_to: str | Destination, storage: str
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """An Optuna study callback that logs each trial of a study stored at ``storage`` to
    ``log_to`` (``"mlflow"``, ``"mlflow:URI"``, ``"wandb"``, ``"wandb:PROJECT"``): one run a
    trial, in an MLflow experiment or a W&B group named after the study.

    The tracker is set up now, not at the first trial: an MLflow store that cannot be reached
    fails here, and a new SQLite store gets its tables before the workers of ``--jobs`` start
    and would make them too, at once. Raises TunerError (BadInput for ``log_to`` itself)."""
    where = parse_log_to(log_to) if isinstance(log_to, str) else log_to
    setup = _mlflow if where.tracker == "mlflow" else _wandb
    with _said(f"--log-to {where}"):
        log = setup(where.where)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with open_results(storage) as results:
            detail = results.trial(study.study_name, trial.number)
        with _said(f"--log-to {where}: could not log trial {trial.number}"):
            log(study.study_name, detail)

    return callback


@contextmanager
def _said(what: str) -> Iterator[None]:
    """A tracker's error as one line after ``what``: its errors run to many lines, and the
    first says what went wrong."""
    try:
        yield
    except Exception as error:
        said = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TunerError(f"{what}: {said}") from error


def curve(trial: TrialDetail) -> Iterator[tuple[int, dict[str, float]]]:
    """The trial's values at each step, in step order: the training loss and learning rate
    of every step, and at each evaluation its metrics (``val_loss`` among them)."""
    steps: dict[int, dict[str, float]] = {}
    for step, (loss, lr) in enumerate(zip(trial.losses, trial.lrs, strict=False), start=1):
        steps[step] = {"train_loss": loss, "lr": lr}
    for evaluation in trial.evals:
        step = int(evaluation["step"])
        values = {k: v for k, v in evaluation.items() if k != "step" and v is not None}
        steps.setdefault(step, {}).update(values)
    yield from sorted(steps.items())


def _params(trial: TrialDetail) -> dict[str, Any]:
    return {**trial.params, "seed": trial.seed, "steps": trial.steps}


def _tags(study: str, trial: TrialDetail) -> dict[str, str]:
    tags = {"tuner.study": study, "tuner.trial": str(trial.number), "tuner.outcome": trial.outcome}
    if trial.reason:
        tags["tuner.reason"] = trial.reason
    if trial.default:
        tags["tuner.default"] = trial.default
    return tags


def _millis(trial: TrialDetail) -> int:
    return int((trial.finished_at.timestamp() if trial.finished_at else time.time()) * 1000)


# How an ended trial's MLflow run ends: those that --trials counts finished.
_MLFLOW_STATUS = {Outcome.FAILED: "FAILED", Outcome.INTERRUPTED: "KILLED"}


def _mlflow(uri: str | None) -> Log:
    # Imported here: mlflow takes seconds to import, and is an optional extra.
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    # Its two lines on making a new store's tables would break tuner's status line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=uri)
    # Opens the store: a SQLite one gets its tables.
    client.search_experiments(max_results=1)

    def experiment_of(study: str) -> str:
        experiment = client.get_experiment_by_name(study)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(study)
        except MlflowException:
            # Made meanwhile by another worker on the study.
            return client.get_experiment_by_name(study).experiment_id

    def log(study: str, trial: TrialDetail) -> None:
        end = _millis(trial)
        run = client.create_run(
            experiment_of(study),
            start_time=end - int((trial.duration_s or 0) * 1000),
            tags=_tags(study, trial),
            run_name=f"trial {trial.number}",
        )
        params = [Param(k, str(v)) for k, v in _params(trial).items() if v is not None]
        metrics = [
            Metric(key, value, end, step)
            for step, values in curve(trial)
            for key, value in values.items()
        ]
        if trial.value is not None:
            metrics.append(Metric("value", trial.value, end, trial.steps or 0))
        if trial.duration_s is not None:
            metrics.append(Metric("duration_s", trial.duration_s, end, 0))
        # MLflow takes at most 100 parameters and 1000 metrics a call.
        for i in range(0, len(params), 100):
            client.log_batch(run.info.run_id, params=params[i : i + 100])
        for i in range(0, len(metrics), MLFLOW_BATCH):
            client.log_batch(run.info.run_id, metrics=metrics[i : i + MLFLOW_BATCH])
        status = _MLFLOW_STATUS.get(Outcome(trial.outcome), "FINISHED")
        client.set_terminated(run.info.run_id, status=status, end_time=end)

    return log


def _wandb(project: str | None) -> Log:
    # Imported here: wandb takes seconds to import, and is an optional extra.
    import wandb

    def log(study: str, trial: TrialDetail) -> None:
        run = wandb.init(
            project=project,
            group=study,
            name=f"{study} trial {trial.number}",
            config=_params(trial),
            tags=[str(trial.outcome)],
            reinit="create_new",
        )
        for step, values in curve(trial):
            run.log(values, step=step)
        run.summary.update(
            {**_tags(study, trial), "value": trial.value, "duration_s": trial.duration_s}
        )
        run.finish(exit_code=1 if Outcome(trial.outcome) in _MLFLOW_STATUS else 0)

    return log
