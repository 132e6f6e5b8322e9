"""``tuner show``: one trial in full, for people or as JSON.

Kept apart from the listings of :mod:`tuner.cli.results`: a page of one trial reads more than its
row, its curves, its confirmation and the trials it trained with in a population.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import click

from tuner.api import open_results, study_settings, to_toml
from tuner.cli import completion, format_option, storage_option
from tuner.cli.output import SPARKLINE, echo_json, number, sparkline, table, wide_option, wrap
from tuner.columns import value_text
from tuner.results import Confirmed, StudySummary, TrialDetail

# The least width of the keys of a page's facts: its longest key, so that the page of a trial
# trained alone lines up as a population member's does.
KEYS = len("population")
# The most characters a population's members take listed one by one, so that its line fits
# 80 columns; longer lists write runs of numbers as ranges.
MEMBERS_WIDTH = 48


@click.command("show")
@click.argument("study", shell_complete=completion.studies)
@click.argument("number", type=int, required=False)
@storage_option
@wide_option
@format_option("table", "json")
@click.option(
    "--config",
    "as_file",
    is_flag=True,
    help="Print the options STUDY was made with as a search file (TOML), in place of a "
    "trial: `tuner search --config FILE` continues the study, or repeats its trials under "
    "another study name.",
)
def show_command(
    study: str, number: int | None, storage: str, width: int | None, fmt: str, as_file: bool
) -> None:
    """Show one trial of STUDY in full: parameters, outcome, timings, provenance, curve.

    \b
    Examples:
      tuner show digits-brisk-otter 12
      tuner show digits-brisk-otter --config > search.toml
    """
    ctx = click.get_current_context()
    if as_file:
        if number is not None or fmt != "table":
            raise click.UsageError("--config prints a study's search file: give STUDY alone")
        click.echo(_search_file(study, storage), nl=False)
        return
    if number is None:
        raise click.MissingParameter(ctx=ctx, param=ctx.command.params[1], param_hint="'NUMBER'")
    with open_results(storage) as results:
        trial = results.trial(study, number)
        summary = results.study(study)
        configs = results.confirmation(study).configs
        members: list[int] = []
        if fmt == "table" and trial.population is not None:
            members = results.population(study, trial.population)
    confirmed = next((c for c in configs if c.trial.number == number), None)
    if fmt == "json":
        echo_json({**trial.to_json(), "confirmation": confirmed and confirmed.to_json()})
    else:
        click.echo(_trial_page(trial, summary, confirmed, members, width))


def _search_file(study: str, storage: str) -> str:
    with open_results(storage) as results:
        settings = study_settings(results, study, storage)
    header = (
        f"The options that made study {study}, as `tuner show --config` wrote them.\n"
        "`tuner search --config FILE` continues it (raise trials for more), or with another\n"
        "study repeats its trials. Options the study does not keep (timeout, device, confirm,\n"
        "population, jobs, plugins given with --plugin) are left to their defaults: add them\n"
        "as examples/search.toml shows."
    )
    if "storage" not in settings:
        header += "\nstorage is left out, as its URL holds a password: give --storage."
    return to_toml(settings, header)


def _trial_page(
    trial: TrialDetail,
    study: StudySummary,
    confirmed: Confirmed | None,
    members: Sequence[int],
    width: int | None,
) -> str:
    value = f", {study.metric} {number(trial.value)}" if trial.value is not None else ""
    heading = f"Trial {trial.number} of study {study.name} ({study.task}): {trial.outcome}{value}"
    params = [(k, value_text(v)) for k, v in trial.params.items()]
    sections = [wrap(heading, width), table(["parameter", "value"], params, width=width)]
    about = _about(trial, members)
    if confirmed is not None:
        about.insert(2, ("confirmed", _confirmed(confirmed)))
    sections.append(_pairs(about, width))
    curves = [
        _curve("loss", trial.losses, f"{len(trial.losses)} steps", width),
        _curve("lr", trial.lrs, "", width),
    ]
    sections.append("\n".join(line for line in curves if line) or "no learning curve recorded")
    if trial.evals:
        keys = list(dict.fromkeys(k for e in trial.evals for k in e))
        rows = [[value_text(e.get(k)) for k in keys] for e in trial.evals]
        sections.append(table(keys, rows, width=width))
    return "\n\n".join(sections)


def _about(trial: TrialDetail, members: Sequence[int]) -> list[tuple[str, str]]:
    provenance = trial.provenance
    timing = "-"
    if trial.duration_s is not None:
        timing = f"{trial.duration_s:.3g} s"
        if trial.steps is not None:
            timing = f"{trial.steps} steps in {timing}"
        if trial.step_time_s is not None:
            timing += f", {trial.step_time_s * 1000:.3g} ms a step"
        if trial.compiled is not None:
            timing += ", compiled" if trial.compiled else ", eager"
    finished = "-" if trial.finished_at is None else f"{trial.finished_at:%Y-%m-%d %H:%M:%S} UTC"
    seed = "-" if trial.seed is None else str(trial.seed)
    population = []
    if trial.population is not None:
        population = [("population", _population(trial.population, members))]
    return [
        ("outcome", f"{trial.outcome} (Optuna: {trial.state})"),
        ("reason", trial.reason or "-"),
        ("metrics", " ".join(f"{k}={number(v)}" for k, v in trial.metrics.items()) or "-"),
        ("time", timing),
        *population,
        ("finished", finished),
        ("seed", f"{seed} (study seed {provenance.seed})"),
        ("device", provenance.device),
        ("versions", ", ".join(f"{lib} {v}" for lib, v in provenance.versions.items())),
        ("plugins", ", ".join(f"{p} {v or '-'}" for p, v in provenance.plugins.items())),
        ("command", provenance.command),
    ]


def _population(lead: int, members: Sequence[int]) -> str:
    """The population a trial trained in, by its first trial's number, and its members."""
    listed = ", ".join(map(str, members))
    if len(listed) > MEMBERS_WIDTH:
        listed = ", ".join(_ranges(members))
    return f"{lead} ({len(members)} trials: {listed})"


def _ranges(numbers: Sequence[int]) -> list[str]:
    """``numbers``, in order, with each run of three or more consecutive ones as ``first-last``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]


def _confirmed(config: Confirmed) -> str:
    """A configuration's confirmation runs in a line: the mean and spread of their values."""
    complete = len(config.values)
    if config.mean is None:
        return f"no run of {len(config.runs)} completed"
    spread = f" ± {number(config.std)}" if config.std is not None else ""
    tests = "".join(f", {name} {number(value)}" for name, value in config.test.items())
    return f"mean {number(config.mean)}{spread} over {complete} of {len(config.runs)} seeds{tests}"


def _pairs(pairs: Sequence[tuple[str, str]], width: int | None) -> str:
    keys = max(KEYS, *(len(key) for key, _ in pairs))
    return "\n".join(wrap(f"{key.ljust(keys)}  {value}", width, keys + 2) for key, value in pairs)


def _curve(name: str, values: Sequence[float], note: str, width: int | None) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    summary = f"{number(values[0])} → {number(values[-1])}, min {number(min(finite))}"
    summary += f", {note}" if note else ""
    points = SPARKLINE if width is None else min(SPARKLINE, width - len(summary) - 8)
    return f"{name.ljust(4)}  {sparkline(values, points)}  {summary}"


COMMANDS = [show_command]
