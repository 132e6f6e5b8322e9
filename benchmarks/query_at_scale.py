"""How fast the queries answer on a large study: ``tuner best`` and ``tuner trials --limit 50``
on 10,000 trials, beside Optuna's own reads of the same study.

The study is built directly rather than searched: every optimizer and schedule registered,
parameters drawn from their search spaces by Optuna's random sampler, outcomes in the
proportions of a real search (about half complete, most of the rest pruned, some diverged and
failed, two still running), and the rows a search writes. Optuna's are added through its
storage, one trial at a time as workers add them, which takes a couple of minutes; tuner's, a
trial row and a curve of every step's loss and learning rate, in one bulk transaction. Give
``--storage`` a database this script built before (``--keep`` keeps it) to time it again
without building::

    python benchmarks/query_at_scale.py [--trials 10000] [--steps 300] [--repeat 7]
    python benchmarks/query_at_scale.py --keep          # prints the URL of the kept file
    python benchmarks/query_at_scale.py --storage sqlite:///PATH

Times are wall-clock, in this process with every module already imported (the command's own
time, as the README quotes it), best and median of ``--repeat`` runs; then one fresh process,
whose start-up is mostly importing SQLAlchemy, alembic and Optuna.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from click.testing import CliRunner
from optuna.trial import TrialState

from tuner import open_results
from tuner.cli import cli
from tuner.db import (
    CurveRow,
    StudyRow,
    TrialRow,
    make_engine,
    open_store,
    optuna_storage,
    upgrade,
)
from tuner.db.models import split_value
from tuner.plan import SearchConfig, plan_search
from tuner.plugins import load_plugins

STUDY = "bench"
EVAL_EVERY_FRACTION = 4
# Of every 100 trials: how a pruned-by-median search of a few hundred steps ends.
OUTCOMES = {"complete": 50, "pruned": 42, "diverged": 5, "failed": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000, help="default 10000")
    parser.add_argument("--steps", type=int, default=300, help="steps a trial (default 300)")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each query (default 7)")
    parser.add_argument("--storage", metavar="URL", help="time a study built before")
    parser.add_argument("--keep", action="store_true", help="keep the database built")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = None if args.storage else Path(tempfile.mkdtemp(prefix="tuner-bench-"))
    url = args.storage or f"sqlite:///{folder / 'bench.db'}"
    try:
        if folder:
            started = time.perf_counter()
            build(url, args.trials, args.steps)
            print(f"built in {time.perf_counter() - started:.0f} s: {url}")
        describe(url)
        measure(url, args.repeat)
    finally:
        if folder and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def build(url: str, trials: int, steps: int) -> None:
    """A study of ``trials`` trials, as a search would have stored it."""
    rng = np.random.default_rng(0)
    registry = load_plugins()
    eval_every = steps // EVAL_EVERY_FRACTION
    config = SearchConfig(task="synthetic", trials=trials, steps=steps, eval_every=eval_every)
    plan = plan_search(config, registry)
    upgrade(url)
    store = open_store(url)
    store.save_study(
        StudyRow(
            name=STUDY,
            task="synthetic",
            settings=plan.settings,
            plugins={p.name: p.version for p in registry.plugins},
            versions={lib: "bench" for lib in ("mlx", "optuna", "tuner")},
            device="cpu",
            seed=0,
            command="python benchmarks/query_at_scale.py",
        )
    )
    storage = optuna_storage(url)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], STUDY)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    quality = {name: rng.uniform(0.05, 0.3) for name in plan.space.optimizers}
    kinds = rng.choice(list(OUTCOMES), size=trials, p=np.array(list(OUTCOMES.values())) / 100)
    rows = []
    started = datetime(2025, 1, 1, tzinfo=UTC)
    for number, outcome in enumerate(kinds):
        ask = sampler.ask()
        sample = plan.space.sample(ask)
        trial = simulate(rng, str(outcome), quality[sample.optimizer], steps, eval_every)
        finished_at = started + timedelta(seconds=number)
        storage.create_new_trial(study_id, optuna_trial(ask, trial, finished_at))
        rows.append(tuner_row(number, ask.params, sample, trial, finished_at))
    for _ in range(2):
        ask = sampler.ask()
        plan.space.sample(ask)
        template = optuna.trial.create_trial(
            params=ask.params, distributions=ask.distributions, state=TrialState.RUNNING
        )
        storage.create_new_trial(study_id, template)
    storage.engine.dispose()
    with make_engine(url).begin() as connection:
        study_row = connection.execute(StudyRow.__table__.select()).one()
        for row in rows:
            row["study_id"] = study_row.id
        ids = connection.execute(
            TrialRow.__table__.insert().returning(TrialRow.id, sort_by_parameter_order=True),
            [{k: v for k, v in row.items() if k != "curve"} for row in rows],
        ).scalars()
        curves = [{"trial_id": id_, **row["curve"]} for id_, row in zip(ids, rows, strict=True)]
        connection.execute(CurveRow.__table__.insert(), curves)


def simulate(
    rng: np.random.Generator, outcome: str, floor: float, steps: int, eval_every: int
) -> dict[str, Any]:
    """A trial's curve and ending: a noisy loss decaying towards ``floor``."""
    stop = {
        "complete": steps,
        "pruned": eval_every * int(rng.integers(1, steps // eval_every + 1)),
        "diverged": int(rng.integers(2, steps)),
        "failed": 0,
    }[outcome]
    rate = rng.uniform(0.005, 0.05)
    losses = floor + (1 - floor) * np.exp(-rate * np.arange(stop)) + rng.normal(0, 0.02, stop)
    losses = losses.clip(1e-3).tolist()
    if outcome == "diverged":
        losses[-1] = math.nan
    evals = [
        {"step": step, "val_loss": losses[step - 1] * 1.05, "r2": 1 - losses[step - 1]}
        for step in range(eval_every, stop + 1, eval_every)
        if math.isfinite(losses[step - 1])
    ]
    reason = {
        "complete": None,
        "pruned": f"pruned at step {stop}",
        "diverged": f"loss became nan at step {stop}",
        "failed": "RuntimeError: out of memory",
    }[outcome]
    return {
        "outcome": outcome,
        "steps": stop,
        "losses": losses,
        "lrs": np.linspace(1e-2, 1e-4, stop).tolist(),
        "evals": evals,
        "value": evals[-1]["val_loss"] if evals else None,
        "metrics": {k: v for k, v in evals[-1].items() if k != "step"} if evals else {},
        "reason": reason,
    }


def optuna_trial(ask: Any, trial: dict[str, Any], finished_at: datetime) -> Any:
    """The trial as Optuna stores it: its parameters, reports, state and value."""
    state = {
        "complete": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
        "diverged": TrialState.PRUNED,
        "failed": TrialState.FAIL,
    }[trial["outcome"]]
    frozen = optuna.trial.create_trial(
        params=ask.params,
        distributions=ask.distributions,
        value=trial["value"] if state != TrialState.FAIL else None,
        intermediate_values={e["step"]: e["val_loss"] for e in trial["evals"]},
        user_attrs={"reason": trial["reason"]} if trial["reason"] else None,
        state=state,
    )
    frozen.datetime_start = (finished_at - timedelta(seconds=1)).replace(tzinfo=None)
    frozen.datetime_complete = finished_at.replace(tzinfo=None)
    return frozen


def tuner_row(
    number: int, params: dict[str, Any], sample: Any, trial: dict[str, Any], finished_at: datetime
) -> dict[str, Any]:
    return {
        "number": number,
        "optimizer": sample.optimizer,
        "schedule": sample.schedule,
        "params": params,
        "seed": number,
        "steps": trial["steps"],
        "duration_s": 0.3 * trial["steps"] / 300,
        "step_time_s": 0.001,
        "compiled": True,
        "metrics": trial["metrics"],
        "value": split_value(trial["value"])[0],
        "value_type": split_value(trial["value"])[1],
        "outcome": trial["outcome"],
        "reason": trial["reason"],
        "finished_at": finished_at,
        "curve": {k: trial[k] for k in ("losses", "lrs", "evals")},
    }


def describe(url: str) -> None:
    with open_results(url) as results:
        study = results.study(STUDY)
    size = ""
    if url.startswith("sqlite:///"):
        size = f", {Path(url.removeprefix('sqlite:///')).stat().st_size / 1e6:.0f} MB of SQLite"
    print(f"study {STUDY}: {study.counts.total:,} trials ({study.counts}){size}")


def measure(url: str, repeat: int) -> None:
    runner = CliRunner()

    def api(ask: Callable[[Any], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with open_results(url) as results:
                return ask(results)

        return call

    def command(*args: str) -> Callable[[], Any]:
        def call() -> Any:
            result = runner.invoke(cli, [*args, "--storage", url])
            assert result.exit_code == 0, result.output

        return call

    with open_results(url) as results:
        best = results.best(STUDY, 1)[0]
    cases = [
        ("open_results(url).best(STUDY, 5)", api(lambda r: r.best(STUDY, 5))),
        ("open_results(url).trials(STUDY, limit=50)", api(lambda r: r.trials(STUDY, limit=50))),
        ("tuner best STUDY", command("best", STUDY)),
        ("tuner best STUDY --format json", command("best", STUDY, "--format", "json")),
        ("tuner trials STUDY --limit 50", command("trials", STUDY, "--limit", "50")),
        (
            "tuner trials STUDY --limit 50 --sort value --format csv",
            command("trials", STUDY, "--limit", "50", "--sort", "value", "--format", "csv"),
        ),
        ("tuner studies", command("studies")),
        ("tuner compare STUDY", command("compare", STUDY)),
        (f"tuner show STUDY {best.number}", command("show", STUDY, str(best.number))),
        ("tuner trials STUDY (all of them)", command("trials", STUDY)),
    ]
    print(f"\n{'in-process, modules imported':58}{'best':>9}{'median':>9}  (of {repeat})")
    for name, call in cases:
        times = timed(call, repeat)
        print(f"{name:58}{ms(min(times)):>9}{ms(statistics.median(times)):>9}")
    optuna_best = timed(lambda: optuna.load_study(study_name=STUDY, storage=url).best_trial, 1)
    optuna_all = timed(lambda: optuna.load_study(study_name=STUDY, storage=url).trials, 1)
    print(f"{'Optuna: load_study(...).best_trial':58}{ms(optuna_best[0]):>9}")
    print(f"{'Optuna: load_study(...).trials':58}{ms(optuna_all[0]):>9}")
    fresh_process(url)
    theirs = optuna.load_study(study_name=STUDY, storage=url).best_trial
    assert (best.number, best.value) == (theirs.number, theirs.value), "disagrees with Optuna"
    print(f"\nThe best trial, {best.number}, is Optuna's study.best_trial.")


def fresh_process(url: str) -> None:
    """Whole commands in new processes, best of three, and what importing alone takes."""
    imports = [sys.executable, "-c", "import tuner.cli, tuner.query, tuner.db, optuna.storages"]
    tuner = Path(sys.executable).with_name("tuner")
    best = [tuner, "best", STUDY, "--storage", url]
    listing = [tuner, "trials", STUDY, "--limit", "50", "--storage", url]
    runs = {
        "fresh process: importing tuner.cli, tuner.db, optuna": imports,
        "fresh process: tuner best STUDY": best,
        "fresh process: tuner trials STUDY --limit 50": listing,
    }
    for label, run in runs.items():
        wall = timed(lambda run=run: subprocess.run(run, check=True, capture_output=True), 3)
        print(f"{label:58}{ms(min(wall)):>9}")


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    main()
