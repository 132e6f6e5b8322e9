"""``tuner search``: run a study, show its progress, end with a leaderboard, and stop cleanly
on Ctrl-C."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from click.core import ParameterSource

from tuner.api import (
    BLAS_CHOICES,
    BLAS_ENV,
    PRUNERS,
    SAMPLERS,
    SearchConfig,
    job_count,
    load_blas,
    parse_confirm,
    parse_jobs,
    parse_names,
    parse_population,
)
from tuner.cli import completion, load_registry, plugin_option, storage_option
from tuner.cli.closing import (
    closing,
    continue_adding,
    finished_trials,
    given_options,
    interrupted,
    masked,
)
from tuner.cli.progress import CtrlC, Display
from tuner.cli.search_file import config_option
from tuner.cli.shared_options import (
    check_confirm,
    check_jobs,
    log_to_option,
    output_options,
    population_option,
)
from tuner.cli.typos import check_study_name

# The options that are SearchConfig's fields as they are; --optimizers and --schedules are split.
CONFIG_OPTIONS = "task trials timeout steps batch_size eval_every study seed device space".split()
CONFIG_OPTIONS += ["sampler", "pruner", "metric", "defaults"]


def _load_blas(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Eager, so that it runs before --plugin, which imports a dotted plugin's parent packages
    # (and perhaps MLX with them) to find it: after MLX has loaded, its BLAS is fixed.
    if value not in BLAS_CHOICES:
        # click.Choice would name --blas alone, to someone who set TUNER_BLAS long ago.
        given = ctx.get_parameter_source("blas") is ParameterSource.ENVIRONMENT
        where = f" (from {BLAS_ENV})" if given else ""
        raise click.BadParameter(f"'{value}'{where}: give auto or bundled", ctx, param)
    load_blas(value)
    return value


@click.command("search")
@config_option
@click.option(
    "--task",
    shell_complete=completion.tasks,
    help="The task to train [the first registered: the built-in digits].",
)
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
    help="End the search after this long: the trial in flight stops at its next step, or "
    "is ended 3 s later if its step hangs.",
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
    "study",
    metavar="NAME",
    shell_complete=completion.studies,
    help="Study to create or continue [a new readable name].",
)
@click.option(
    "--new",
    is_flag=True,
    help="--study names a new study, even one a typo away from a study that exists: without "
    "it, such a name is asked about on a terminal and refused elsewhere.",
)
@storage_option
@click.option(
    "--seed",
    type=int,
    help="Seeds the sampler and every trial: the same seed draws the same trials with --jobs 1 "
    "[a new study's is TUNER_SEED or drawn at random, stored and printed; a resumed study keeps "
    "its own].",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "gpu"]),
    help="Where MLX trains [the GPU when there is one].",
)
@click.option(
    "--optimizers",
    metavar="A,B",
    shell_complete=completion.optimizers,
    help="Optimizers to search [all registered].",
)
@click.option(
    "--schedules",
    metavar="X,Y",
    shell_complete=completion.schedules,
    help="Schedules to search [all registered].",
)
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
    help="What to optimise: val_loss (minimised) or a metric of the task, "
    "such as accuracy, in its own direction [val_loss].",
)
@click.option(
    "--sampler",
    type=click.Choice(SAMPLERS),
    default="tpe",
    show_default=True,
    help="Optuna sampler.",
)
@click.option(
    "--pruner",
    type=click.Choice(PRUNERS),
    default="quartile",
    show_default=True,
    help="quartile stops a trial, from the first eval, when it is among the worst quarter of "
    "the finished trials there, pruned ones too; median is Optuna's median pruner against "
    "complete trials; hyperband and sha are Optuna's, more aggressive; none runs every trial "
    "to the end.",
)
@click.option(
    "--defaults/--no-defaults",
    default=True,
    show_default=True,
    help="Try each optimizer's known-good settings (from the literature) first in a new study.",
)
@click.option(
    "--jobs",
    metavar="[auto|N]",
    default="auto",
    show_default=True,
    envvar="TUNER_JOBS",
    callback=check_jobs,
    help="Worker processes on the study, this one included, at most the cores: auto is one a "
    "core on the CPU (as memory allows) and one on a GPU; never more than the trials left. "
    "The others are tuner worker processes, which end with this one however it ends; 1 runs "
    "one process, whose trials a seed replays exactly. Env: TUNER_JOBS.",
)
@click.option(
    "--oversubscribe",
    is_flag=True,
    help="Allow --jobs above the cores: the workers then wait on each other, and enough of "
    "them make the machine unresponsive.",
)
@click.option(
    "--confirm",
    metavar="KxS",
    default="3x3",
    show_default=True,
    callback=check_confirm,
    help="After the search, train the K best configurations (one per optimizer and schedule) "
    "again in full with S fresh seeds each, to tell the winner from luck; 0 to skip. "
    "--timeout bounds the search, not these runs.",
)
@click.option(
    "--blas",
    metavar="[auto|bundled]",
    default="auto",
    show_default=True,
    envvar=BLAS_ENV,
    is_eager=True,
    callback=_load_blas,
    help="The BLAS MLX calls on Linux: auto uses OpenBLAS where it is installed, bundled "
    "the mlx wheel's own. Env: TUNER_BLAS.",
)
@population_option
@log_to_option
@plugin_option
@output_options
def search_command(
    task: str | None,
    trials: int,
    timeout: float | None,
    steps: int | None,
    batch_size: int | None,
    eval_every: int | None,
    study: str | None,
    new: bool,
    storage: str,
    seed: int | None,
    device: str | None,
    optimizers: str | None,
    schedules: str | None,
    space: Sequence[str],
    metric: str | None,
    sampler: str,
    pruner: str,
    defaults: bool,
    jobs: str,
    oversubscribe: bool,
    confirm: str,
    blas: str,
    population: str,
    log_to: str | None,
    plugins: Sequence[str],
    quiet: bool,
    verbose: bool,
) -> None:
    """Search optimizers, schedules and their settings for a task with short MLX trials.

    Every trial trains the task's model from scratch with one sampled optimizer and schedule,
    is pruned early when it falls behind, and is stored in --storage. Many processes, on many
    machines, can work on one study: give them the same --study and --storage.

    A study is resumed with the settings it was created with: run it again with the same
    --study and a larger --trials. On a terminal a status line shows the progress on stderr.
    Ctrl-C stops the trial in flight, records it as interrupted, and prints the leaderboard
    and the command that continues the study (exit status 130); a second Ctrl-C skips the
    leaderboard. SIGTERM and SIGHUP (a closed terminal) stop it alike (exit status 143, 129).
    A trial whose step hangs (a plugin that sleeps or loops) is ended 3 s after the signal or
    --timeout, and recorded as failed.

    \b
    Examples:
      tuner search
      tuner search --task synthetic --trials 20 --optimizers adam,sgd
      tuner search --study mine --space lr=1e-3..1e-1:log --space sgd.momentum=0.9
      tuner search --config examples/search.toml --trials 100
    """
    ctx = click.get_current_context()
    config = SearchConfig(
        **{name: ctx.params[name] for name in CONFIG_OPTIONS},
        optimizers=parse_names(optimizers) if optimizers else None,
        schedules=parse_names(schedules) if schedules else None,
        confirm=parse_confirm(confirm),
        population=parse_population(population),
        command=" ".join(["tuner", "search", *given_options(ctx)]),
    )
    if study is not None:
        check_study_name(storage, study, new)
    count = job_count(parse_jobs(jobs), oversubscribe, device, storage)
    drive(
        ctx, config, plugins, storage, blas, quiet=quiet, verbose=verbose, jobs=count, log_to=log_to
    )


def drive(
    ctx: click.Context,
    config: SearchConfig,
    plugins: Sequence[str],
    storage: str,
    blas: str | None,
    *,
    quiet: bool,
    verbose: bool,
    jobs: int = 1,
    helper: bool = False,
    log_to: str | None = None,
) -> None:
    """Run the search of ``config`` as ``tuner search`` and ``tuner worker`` do (see
    :func:`tuner.api.run`): its progress on stderr, its signals, and the leaderboard at the
    end. A ``helper`` (one of the worker processes of ``jobs``) says nothing of how it ended:
    its search does."""
    # Here for start-up time: tuner.api's search brings in SQLAlchemy, Optuna and MLX, which
    # `tuner search --help` and the other commands need not load.
    from tuner.api import prepare, run

    trials = config.trials
    display = Display(
        lambda study: continue_adding(ctx, storage, study, trials),
        masked(storage),
        trials,
        config.timeout,
        live=not quiet and sys.stderr.isatty(),
        verbose=verbose and not quiet,
        blas=load_blas(blas),
        failures=not helper,
        confirm_runs=config.confirm[0] * config.confirm[1],
    )
    with CtrlC(display, defer=helper) as ctrl_c:
        try:
            plan = prepare(config, load_registry(plugins), storage)
            with ctrl_c.guarding():
                try:
                    run(plan, storage, display, ctrl_c.stop, plugins, jobs=jobs, log_to=log_to)
                finally:
                    display.finish()
                if not helper:
                    _say_how_it_ended(display, ctrl_c, storage)
                text = display.name
                if not quiet and not ctrl_c.hurry:
                    text = closing(ctx, display.name, plan.config.metric, storage, trials)
                if ctrl_c.hurry:
                    raise KeyboardInterrupt
                click.echo(text)
        except KeyboardInterrupt:
            click.echo(interrupted(ctx, display.name, trials), err=True)
            ctx.exit(ctrl_c.status)
    if ctrl_c.stop.is_set():
        ctx.exit(ctrl_c.status)


def _say_how_it_ended(display: Display, ctrl_c: CtrlC, storage: str) -> None:
    """The line on stderr for a search that a signal stopped, or that had nothing to run."""
    if ctrl_c.stop.is_set():
        what = display.interrupted or (
            "between trials, none cut short" if display.ran else "before any trial"
        )
        how = "Interrupted" if ctrl_c.name == "SIGINT" else f"Stopped by {ctrl_c.name}"
        click.echo(f"{how}: {what}.", err=True)
    elif display.ran == 0:
        click.echo(
            f"Study {display.name} already holds "
            f"{finished_trials(storage, display.name or '')} finished trials: "
            "nothing to run. Ask for more with --trials.",
            err=True,
        )


COMMANDS = [search_command]
