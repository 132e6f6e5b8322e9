"""The ceiling for many workers on one PostgreSQL study (issue 28): trial starts a second, the
claim lock's hold time, the connections in use, and whether the count stayed exact, for N
``tuner worker`` processes on one study of a task whose trials cost next to nothing.

For each N a fresh database is made with ``createdb`` (and dropped after). ``tuner search``
makes the study on it, of the ``instant`` task of ``instant_task.py`` (3 weights, one step a
trial) with ``--population 1``, so that every trial is one claim, and runs its first trial;
then N ``tuner worker STUDY --trials T`` processes start together and run until the study
holds T finished trials. Each worker loads ``instant_task.py`` with ``--plugin``, which writes
how long each of its claims waited for the lock and held it.

Printed for each N:
- trial starts a second: Optuna's ``datetime_start`` of the trials between the 10th and the
  90th percentile of starts, so that the workers' start-up and last trials are left out;
- the claim lock's hold time, median and p99, and its wait time, median;
- the lock's use: the sum of its holds over the time from the first hold to the last (1.00:
  never free, the workers queue on it);
- the PostgreSQL connections to that database, peak, from ``pg_stat_activity`` sampled every
  50 ms, and that peak a worker;
- the transactions the server ran on that database a trial, waits for the lock among them
  (``pg_stat_database``'s commits and rollbacks from the workers' start to their end);
- whether the count stayed exact: finished trials == T, none running, none failed.

Nothing is asserted. The server must let ``createdb`` and ``dropdb`` in without a password.
``--checkout DIR`` runs the tuner of another checkout of the repository (a ``git worktree`` of
an earlier commit, say) with this environment's packages (``checkout.py``), so that two
versions are compared in one sitting.

    python benchmarks/coordination.py [--workers 1,2,4,8,16] [--trials 150]
        [--host 127.0.0.1] [--port 5432] [--user postgres] [--sampler tpe] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from checkout import COMMAND, checkout_env
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

TUNER = Path(sys.executable).with_name("tuner")
PLUGIN = Path(__file__).resolve().with_name("instant_task.py")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
SAMPLE_S = 0.05


@dataclass
class Run:
    starts_a_second: float
    holds: list[float]
    waits: list[float]
    lock_use: float
    peak_connections: int
    transactions: int
    finished: int
    running: int
    failed: int
    wall: float


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def transactions(admin_url: str, database: str) -> int:
    engine = create_engine(admin_url, poolclass=NullPool)
    query = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :database"
    with engine.connect() as connection:
        count = connection.scalar(text(query), {"database": database})
    engine.dispose()
    return count


def watch_connections(
    admin_url: str, database: str, stop: threading.Event, peak: list[int]
) -> None:
    engine = create_engine(admin_url, poolclass=NullPool)
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :database")
    with engine.connect() as connection:
        while not stop.is_set():
            peak[0] = max(peak[0], connection.scalar(query, {"database": database}))
            connection.rollback()
            time.sleep(SAMPLE_S)
    engine.dispose()


def run(workers: int, trials: int, server: str, sampler: str, checkout: Path | None) -> Run:
    database = f"tuner_coordination_{os.getpid()}_{workers}"
    host, port, user = server.split(":")
    where = ["-h", host, "-p", port, "-U", user]
    subprocess.run(["createdb", *where, database], check=True)
    url = f"postgresql+psycopg://{user}@{host}:{port}/{database}"
    admin_url = f"postgresql+psycopg://{user}@{host}:{port}/postgres"
    try:
        with tempfile.TemporaryDirectory() as folder:
            plugin = ["--plugin", str(PLUGIN), "--storage", url, "--population", "1", "--quiet"]
            env = {**os.environ, "COORDINATION_TIMES": folder}
            tuner = [TUNER]
            if checkout:
                env, tuner = checkout_env(checkout, env), COMMAND
            make = [*tuner, "search", "--task", "instant", "--study", "s", "--trials", "1"]
            make += ["--sampler", sampler, "--confirm", "0", *plugin]
            # Run in the temporary folder: a checkout's tuner would come first on the path of
            # python -c.
            subprocess.run(make, check=True, capture_output=True, env=env, cwd=folder)
            stop, peak = threading.Event(), [0]
            watcher = threading.Thread(
                target=watch_connections, args=(admin_url, database, stop, peak)
            )
            watcher.start()
            before = transactions(admin_url, database)
            started = time.perf_counter()
            command = [*tuner, "worker", "s", "--trials", str(trials), *plugin]
            processes = [
                subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, cwd=folder)
                for _ in range(workers)
            ]
            codes = [process.wait() for process in processes]
            wall = time.perf_counter() - started
            stop.set()
            watcher.join()
            ran = transactions(admin_url, database) - before
            if any(codes):
                raise SystemExit(f"{workers} workers: exit statuses {codes}")
            lines = [line.split() for file in Path(folder).glob("*.times") for line in file.open()]
        waits = [float(wait) for wait, _hold, _let_go in lines]
        holds = [float(hold) for _wait, hold, _let_go in lines]
        taken = min(float(let_go) - float(hold) for _wait, hold, let_go in lines)
        let_go = max(float(let_go) for _wait, _hold, let_go in lines)
        study = optuna.load_study(study_name="s", storage=url)
        all_trials = study.get_trials(deepcopy=False)
        starts = sorted(t.datetime_start.timestamp() for t in all_trials[1:] if t.datetime_start)
        first, last = int(0.1 * len(starts)), int(0.9 * len(starts))
        rate = (last - first) / (starts[last] - starts[first])
        states = [t.state for t in all_trials]
        return Run(
            starts_a_second=rate,
            holds=holds,
            waits=waits,
            lock_use=sum(holds) / (let_go - taken),
            peak_connections=peak[0],
            transactions=ran,
            finished=sum(state in FINISHED for state in states),
            running=states.count(optuna.trial.TrialState.RUNNING),
            failed=states.count(optuna.trial.TrialState.FAIL),
            wall=wall,
        )
    finally:
        subprocess.run(["dropdb", *where, "--force", database], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="5432")
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--checkout", type=Path, help="run this checkout's tuner")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    server = f"{args.host}:{args.port}:{args.user}"
    print(f"{args.trials} trials of the instant task, sampler {args.sampler}, --population 1")
    print(f"tuner: {args.checkout or 'this checkout'}")
    print(
        "workers  starts/s  hold median  hold p99  wait median  lock use"
        "  peak connections (a worker)  transactions a trial  exact  wall"
    )
    for workers in (int(n) for n in args.workers.split(",")):
        result = run(workers, args.trials, server, args.sampler, args.checkout)
        exact = result.finished == args.trials and result.running == result.failed == 0
        count = f"{result.finished} finished, {result.running} running, {result.failed} failed"
        print(
            f"{workers:>7}  {result.starts_a_second:>8.1f}"
            f"  {statistics.median(result.holds) * 1000:>8.0f} ms"
            f"  {percentile(result.holds, 0.99) * 1000:>5.0f} ms"
            f"  {statistics.median(result.waits) * 1000:>8.0f} ms"
            f"  {result.lock_use:>8.2f}"
            f"  {result.peak_connections:>16} ({result.peak_connections / workers:.1f})"
            f"  {result.transactions / args.trials:>20.0f}"
            f"  {'yes' if exact else 'NO: ' + count:>5}  {result.wall:>4.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
