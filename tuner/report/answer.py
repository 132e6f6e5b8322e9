"""The first box of a report of one study: its answer, and the commands to run next.

The answer is the confirmed winner where the study has one: a trial's value comes from one
seed, and the search's best trial may lose once trained again with others. Without
confirmation runs, it is the best complete trial, marked unconfirmed. The commands are built
to run as written, in a shell, on the same storage: each is tested so (tests/test_report.py).
"""

from __future__ import annotations

import html
import math
import shlex

from tuner.invocation import program
from tuner.report import tables
from tuner.report.read import StudyData
from tuner.results import Confirmation, Outcome, TrialSummary, ranking

# The complete trials whose optimizers, schedules and learning rates a narrowed search keeps.
NARROW_TOP = 5
# How far past the top trials' learning rates a narrowed search looks, each way.
LR_MARGIN = 2.0
# The seeds that ``tuner confirm`` is advised to train with, at the least.
MORE_SEEDS = 5


def ranked_complete(data: StudyData) -> list[TrialSummary]:
    """The complete trials with a finite value, best first, ties by number."""
    complete = [
        t
        for t in data.trials
        if t.outcome is Outcome.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    return sorted(complete, key=ranking(data.summary.direction))


def answer_box(data: StudyData, storage: str | None) -> str:
    """The box, as HTML; ``storage`` is the URL the commands name with ``--storage``, None
    where they run on the default."""
    ranked = ranked_complete(data)
    if not ranked:
        return ""
    winner = data.confirmation.winner
    trial = winner.trial if winner is not None else ranked[0]
    metric = data.summary.metric
    if winner is not None:
        spread = "" if winner.std is None else f" ± {tables.number(winner.std, 3)}"
        pair = f"{trial.optimizer}+{trial.schedule}"
        title = f"{headline(data.confirmation)}: trial {trial.number}, {pair}"
        lines = [
            f"Mean {metric} {tables.number(winner.mean)}{spread} over {len(winner.values)} "
            f"seeds, trained again in full; {tables.number(trial.value)} in the search.",
            # With its p-value, where there are runs enough to test the lead.
            data.confirmation.verdict,
        ]
        best = ranked[0]
        if best.number != trial.number:
            place = _place(data, best.number)
            lines.append(
                f"The search's best trial, {best.number} ({best.optimizer}+{best.schedule}, "
                f"{tables.number(best.value)} on its one seed), "
                + (f"came {place} once confirmed." if place else "was not confirmed.")
            )
    else:
        title = f"Best trial, unconfirmed: trial {trial.number}, {trial.optimizer}+{trial.schedule}"
        why = (
            "none of its confirmation runs completed"
            if data.confirmation.configs
            else "no confirmation run has trained it again"
        )
        lines = [
            f"{metric} {tables.number(trial.value)}, from one seed: {why}, so its lead may be "
            "luck; no p-value yet.",
            data.by_optimizer.verdict,
        ]
    parts = [f'<h2 class="answer-title">{html.escape(title)}</h2>']
    parts += [f"<p>{html.escape(line)}</p>" for line in lines if line]
    parts.append(tables.table([], _settings(trial), css="pairs settings"))
    parts.append("<p><b>Next</b></p>")
    parts += [_command(why, line) for why, line in next_commands(data, trial, storage)]
    return f'<section id="answer" class="answer">{"".join(parts)}</section>'


def headline(confirmation: Confirmation) -> str:
    """What the confirmed leader is called: a winner only where its lead was tested larger
    than the seed-to-seed noise, as the verdict beside it says."""
    if confirmation.clear:
        return "Confirmed winner"
    if confirmation.clear is False:
        return "Confirmed leader, within the noise"
    return "Confirmed leader, its lead untested"


def _place(data: StudyData, number: int) -> str:
    """Where trial ``number`` came among the confirmed configurations (``3rd``), or ``""``."""
    numbers = [c.trial.number for c in data.confirmation.configs if c.mean is not None]
    if number not in numbers:
        return ""
    n = numbers.index(number) + 1
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n if n < 20 else n % 10, 'th') }"


def _settings(trial: TrialSummary) -> list[tuple[str, str]]:
    return [(key, tables.text(value)) for key, value in trial.params.items()]


def _command(why: str, line: str) -> str:
    return (
        f'<p class="note">{html.escape(why)}</p>'
        f'<div class="command"><code>{html.escape(line)}</code>'
        '<button type="button" onclick="copyCommand(this)">Copy</button></div>'
    )


def next_commands(
    data: StudyData, trial: TrialSummary, storage: str | None
) -> list[tuple[str, str]]:
    """What to run next, each with why: export the answer, confirm it with more seeds, and
    search again where the top trials are."""
    name = shlex.quote(data.name)
    tail = _plugins(data) + ([] if storage is None else ["--storage", storage])
    tail = [shlex.quote(word) for word in tail]
    tuner = program()
    confirmed = data.confirmation.configs
    seeds = max((len(c.runs) for c in confirmed), default=0)
    seeds = MORE_SEEDS if seeds < MORE_SEEDS else 2 * seeds
    top = ["--top", str(len(confirmed))] if confirmed else []
    return [
        (
            f"Trial {trial.number}'s optimizer and schedule as MLX code:",
            " ".join([tuner, "export", name, "--trial", str(trial.number), *tail]),
        ),
        (
            f"Train the best configurations again with {seeds} seeds each:",
            " ".join([tuner, "confirm", name, *top, "--seeds", str(seeds), *tail]),
        ),
        (
            f"Search again, in a new study, where the top {NARROW_TOP} complete trials are: "
            "their optimizers, schedules and learning rates:",
            " ".join([tuner, "search", *_narrowed(data), *tail]),
        ),
    ]


def _narrowed(data: StudyData) -> list[str]:
    """The options of a new search over the top complete trials' optimizers, schedules and
    learning rates, with the study's task, metric and budget, and its other choices."""
    top = ranked_complete(data)[:NARROW_TOP]
    optimizers = list(dict.fromkeys(str(t.optimizer) for t in top))
    schedules = list(dict.fromkeys(str(t.schedule) for t in top))
    rates = [t.lr for t in top if t.lr]
    settings = data.settings
    words = ["--task", data.summary.task]
    if data.summary.metric != "val_loss":
        words += ["--metric", data.summary.metric]
    # A searched batch size is the space's, which --space below repeats.
    searched = settings.get("space", {})
    for key in ("steps", "batch_size", "eval_every"):
        if key in settings and key not in searched:
            words += [f"--{key.replace('_', '-')}", str(settings[key])]
    words += ["--optimizers", ",".join(optimizers), "--schedules", ",".join(schedules)]
    if rates:
        low = float(f"{min(rates) / LR_MARGIN:.2g}")
        high = float(f"{max(rates) * LR_MARGIN:.2g}")
        words += ["--space", f"lr={low:g}..{high:g}:log"]
    chosen = {*optimizers, *schedules, data.summary.task}
    for expr in _given(data, "--space"):
        # The study's other narrowings, but of what is no longer searched: refused, those.
        key = expr.partition("=")[0].strip()
        owner, dot, _ = key.rpartition(".")
        if key != "lr" and (not dot or owner in chosen):
            words += ["--space", expr]
    for option in ("--sampler", "--pruner", "--device"):
        words += [part for value in _given(data, option) for part in (option, value)]
    # As many trials as this study's search counted: a narrower space needs no more.
    words += ["--trials", str(data.summary.counts.finished)]
    return [shlex.quote(word) for word in words]


def _given(data: StudyData, option: str) -> list[str]:
    """The values given to ``option`` in the command that made the study; none when it was
    made otherwise (by ``tuner.search``)."""
    try:
        words = shlex.split(data.provenance.command)
    except ValueError:
        return []
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == option]


def _plugins(data: StudyData) -> list[str]:
    """The ``--plugin`` options of the search that made the study, which its optimizers and
    task may need."""
    return [part for plugin in _given(data, "--plugin") for part in ("--plugin", plugin)]
