"""``tuner search``: run a study, show its progress, and end with a leaderboard."""

from __future__ import annotations

import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from tuner.cli import load_registry, plugin_option, storage_option
from tuner.cli.output import number
from tuner.cli.results import trial_table

if TYPE_CHECKING:
    from tuner.query import Results, TrialSummary

LEADERBOARD_SIZE = 5


def _names(value: str | None) -> list[str] | None:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


@click.command("search")
@click.option("--task", help="The task to train [the first registered: the built-in digits].")
@click.option(
    "--trials",
    type=int,
    default=60,
    show_default=True,
    help="Finished (complete or pruned) trials the study should hold; "
    "run again with more to continue it.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop starting trials after this long.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), help="Training steps a trial [task's default]."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size [task's default].")
@click.option(
    "--eval-every",
    type=click.IntRange(min=1),
    help="Validate, report and maybe prune every N steps [task's default].",
)
@click.option(
    "--study",
    "study_name",
    metavar="NAME",
    help="Study to create or continue [a new readable name].",
)
@storage_option
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds the sampler and every trial: same seed, same study.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "gpu"]),
    help="Where MLX trains [the GPU when there is one].",
)
@click.option("--optimizers", metavar="A,B", help="Optimizers to search [all registered].")
@click.option("--schedules", metavar="X,Y", help="Schedules to search [all registered].")
@click.option(
    "--space",
    "space",
    multiple=True,
    metavar="EXPR",
    help="Narrow the search space (repeatable): lr=1e-4..1e-1:log, "
    "adamw.weight_decay=1e-6..1e-2:log, sgd.nesterov=true,false, sgd.momentum=0.9.",
)
@click.option(
    "--metric",
    default="val_loss",
    show_default=True,
    help="What to optimise: val_loss (minimised) or a metric of the task, "
    "such as accuracy, in its own direction.",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "cmaes", "gp", "qmc"]),
    default="tpe",
    show_default=True,
    help="Optuna sampler.",
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "sha", "none"]),
    default="median",
    show_default=True,
    help="Optuna pruner.",
)
@plugin_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the study's name at the end.")
def search_command(
    task: str | None,
    trials: int,
    timeout: float | None,
    steps: int | None,
    batch_size: int | None,
    eval_every: int | None,
    study_name: str | None,
    storage: str,
    seed: int,
    device: str | None,
    optimizers: str | None,
    schedules: str | None,
    space: Sequence[str],
    metric: str,
    sampler: str,
    pruner: str,
    plugins: Sequence[str],
    quiet: bool,
) -> None:
    """Search optimizers, schedules and their settings for TASK with short MLX trials.

    Every trial trains the task's model from scratch with one sampled optimizer and schedule,
    is pruned early when it falls behind, and is stored in --storage. Many processes, on many
    machines, can work on one study: give them the same --study and --storage.

    \b
    Examples:
      tuner search
      tuner search --task synthetic --trials 20 --optimizers adam,sgd
      tuner search --study mine --space lr=1e-3..1e-1:log --space sgd.momentum=0.9
    """
    import optuna

    from tuner.db import mask_url
    from tuner.query import open_results
    from tuner.study import SearchConfig, plan_search, run_search

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = SearchConfig(
        task=task,
        trials=trials,
        timeout=timeout,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        study=study_name,
        seed=seed,
        device=device,
        optimizers=_names(optimizers),
        schedules=_names(schedules),
        space=space,
        sampler=sampler,
        pruner=pruner,
        metric=metric,
    )
    plan = plan_search(config, load_registry(plugins))
    display = None if quiet else Display(sys.stdout.isatty())
    study = run_search(plan, storage, display.after_trial if display else None)
    if display:
        display.finish()
        if not display.trials:
            click.echo(
                f"Study {study.study_name} already holds {trials} finished trials: "
                "nothing to run. Ask for more with --trials.",
                err=True,
            )
    if quiet:
        click.echo(study.study_name)
        return
    name = study.study_name
    with open_results(storage) as results:
        top = [t for t in results.best(name, LEADERBOARD_SIZE) if t.outcome == "complete"]
        click.echo(leaderboard(name, metric, top, results))
    given = click.get_current_context().get_parameter_source("storage")
    where = f" (with --storage {mask_url(storage)})" if given.name == "COMMANDLINE" else ""
    show = f"tuner show {name} {top[0].number}, " if top else ""
    click.echo(
        f"\nStudy {name} in {mask_url(storage)}. "
        f"Look closer: tuner best {name}, {show}tuner compare {name}{where}. "
        f"Continue it: {continue_command(click.get_current_context(), name, trials * 2)}"
    )


def continue_command(ctx: click.Context, study: str, trials: int) -> str:
    """The ``tuner search`` that continues this study: the options given, with its name and a
    new --trials, since a study resumed with other settings is refused."""
    from tuner.db import mask_url

    words = ["tuner", "search", "--study", study, "--trials", str(trials)]
    for param in ctx.command.params:
        skip = param.name in ("study_name", "trials", "quiet")
        if skip or ctx.get_parameter_source(param.name).name != "COMMANDLINE":
            continue
        values = ctx.params[param.name]
        for value in values if param.multiple else [values]:
            words += [
                param.opts[-1],
                shlex.quote(mask_url(value) if param.name == "storage" else str(value)),
            ]
    return " ".join(words)


class Display:
    """One live status line on a terminal; failed trials as lines on stderr."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.started = time.monotonic()
        self.trials = 0

    def after_trial(self, study: Any, trial: Any, progress: Any) -> None:
        self.trials += 1
        import optuna

        if trial.state == optuna.trial.TrialState.FAIL:
            self._clear()
            reason = trial.user_attrs.get("reason", "unknown error")
            click.echo(f"trial {trial.number} failed: {reason}", err=True)
        if not self.live:
            return
        done = len(
            study.get_trials(
                deepcopy=False,
                states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED),
            )
        )
        elapsed = time.monotonic() - self.started
        left = elapsed / max(done, 1) * max(progress.total - done, 0)
        line = f"{done}/{progress.total} trials  {_clock(elapsed)} elapsed  ~{_clock(left)} left"
        try:
            best = study.best_trial
            line += (
                f"  best {number(best.value)}: {best.params['optimizer']}"
                f" + {best.params['schedule']}"
            )
        except ValueError:
            pass
        click.echo(f"\r\x1b[2K{line}", nl=False)

    def _clear(self) -> None:
        if self.live:
            click.echo("\r\x1b[2K", nl=False)

    def finish(self) -> None:
        if self.live:
            click.echo()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:d}:{seconds:02d}"


def leaderboard(name: str, metric: str, top: Sequence[TrialSummary], results: Results) -> str:
    """The best complete trials as a table, best first, with the task's other metrics."""
    if not top:
        counts = Counter(t.outcome for t in results.trials(name))
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        return f"No complete trial yet in study {name} ({summary or 'no trials'})."
    complete = results.study(name).counts.complete
    return f"Top {len(top)} of {complete} complete trials by {metric}\n{trial_table(top, metric)}"


COMMANDS = [search_command]
