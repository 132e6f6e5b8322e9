"""What a notebook shows of results: the HTML tables of ``_repr_html_``, and a study's trials as
a pandas DataFrame. Kept apart from :mod:`tuner.results`, whose types must import only the
standard library, and from the reads of :mod:`tuner.query`, which fetch what these show.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.results import FINISHED, Confirmation, Outcome, StudySummary, TrialSummary

if TYPE_CHECKING:
    import pandas

# The columns of a study with no trials: those of TrialSummary's JSON that are not nested.
_COLUMNS = ["number", "rank", "value", "state", "outcome", "optimizer", "schedule"]
_COLUMNS += ["duration_s", "steps", "reason", "default", "finished_at", "population"]


def trials_frame(ranked: Sequence[TrialSummary]) -> pandas.DataFrame:
    """The trials, ranked best first as ``Results.trials(sort="value")`` gives them, as one row
    each in number order: their JSON flattened as ``tuner trials --format csv`` does
    (``params.lr``, ``metrics.accuracy``), with ``rank`` (1 for the best finished trial, as
    ``best`` ranks: complete before pruned before diverged; missing for failed and running
    ones), ``outcome`` a category ordered as they rank, and ``finished_at`` a UTC datetime."""
    try:
        import pandas  # optional: only this needs it
    except ImportError:
        raise TunerError("to_dataframe needs pandas: pip install 'tuner[pandas]'") from None
    if not ranked:
        return pandas.DataFrame(columns=_COLUMNS)
    frame = pandas.json_normalize([trial.to_json() for trial in ranked])
    ranks = [i + 1 if trial.outcome in FINISHED else None for i, trial in enumerate(ranked)]
    frame.insert(1, "rank", pandas.array(ranks, dtype="Int64"))
    frame["outcome"] = pandas.Categorical(frame["outcome"], list(Outcome), ordered=True)
    frame["finished_at"] = pandas.to_datetime(frame["finished_at"], utc=True, format="ISO8601")
    return frame.sort_values("number", ignore_index=True)


def study_html(
    summary: StudySummary, best: Sequence[TrialSummary], confirmation: Confirmation
) -> str:
    """A study: what it searches, how its trials ended, its best trials, and the verdict of
    its confirmation runs when it has them."""
    metrics = sorted({name for trial in best for name in trial.metrics} - {summary.metric})
    head = ["rank", "trial", "optimizer", "schedule", "lr", summary.metric, "outcome", *metrics]
    rows = [
        [
            rank,
            trial.number,
            trial.optimizer,
            trial.schedule,
            _number(trial.lr),
            _number(trial.value),
            trial.outcome,
            *(_number(trial.metrics.get(name)) for name in metrics),
        ]
        for rank, trial in enumerate(best, start=1)
    ]
    about = (
        f"<b>{escape(summary.name)}</b>: task {escape(summary.task)}, "
        f"{escape(summary.metric)} ({summary.direction}d), {summary.counts}"
    )
    parts = [f"<p>{about}</p>"]
    if rows:
        parts.append(_table(head, rows))
    if confirmation.configs:
        parts.append(f"<p>{escape(confirmation.verdict)}</p>")
    return f'<div class="tuner-study">{"".join(parts)}</div>'


def studies_html(storage: str, studies: Sequence[StudySummary]) -> str:
    """The studies of a storage, oldest first, each with its counts and best value."""
    head = ["study", "task", "metric", "trials", "best", "best trial", "created"]
    rows = [
        [
            study.name,
            study.task,
            f"{study.metric} ({study.direction}d)",
            study.counts,
            _number(None if study.best is None else study.best.value),
            None if study.best is None else study.best.number,
            f"{study.created_at:%Y-%m-%d %H:%M}",
        ]
        for study in studies
    ]
    table = _table(head, rows) if rows else "<p>no studies</p>"
    return f'<div class="tuner-studies"><p><b>{escape(storage)}</b></p>{table}</div>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = "".join(f"<th>{escape(str(name))}</th>" for name in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.4g}"
