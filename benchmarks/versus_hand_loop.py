"""How many training steps a second ``tuner search`` affords against the search a user writes by
hand with Optuna and MLX (issue 14), for the same wall-clock budget on ``digits``.

The hand loop is below, without any tuner import: Optuna's ``RDBStorage`` on a new SQLite file,
a seeded ``TPESampler``, the ``MedianPruner`` (5 startup trials), and an eager MLX loop
(``nn.value_and_grad``, ``optimizer.update``, ``mx.eval`` each step) on tuner's digits data and
split, model (MLP 64-128-10), 300 steps of 64 and validation every 50 steps, reported to
Optuna for pruning. It samples sgd, adam, adamw or lion with a cosine decay and a log-uniform
peak rate in ``1e-4..1`` (tuner's default range). ``tuner search --timeout SECONDS`` runs with
its defaults (every optimizer and schedule) on a new SQLite file. Each runs in a fresh process,
one after the other; MLX's built kernels are reused from its disk cache, as in any run on a
machine but the first.

What is printed, for each:

- wall s: the seconds its process ran, start to exit, imports included, timed here;
- trials; finished: complete or pruned (diverged included); steps: optimizer steps trained;
  steps / s: steps / wall s;
- outside MLX: 1 - MLX training time / wall s, estimated the same way for both. tuner stores a
  trial's median step time (``step_time_s``, as ``tuner show`` gives it; a step is the batch
  gather, the step and its ``mx.eval``), and the hand loop times its steps the same way with
  ``perf_counter``: MLX time is each trial's steps × that median, summed. So evals, kernel
  builds and slow outlying steps count as outside. The hand loop also prints its exact sums of
  step and eval times, and the share outside both; tuner stores no eval times;
- outside trials: 1 - trial time / wall s, a trial's time being from its model's creation to the
  end of its training, reports and pruning checks included, sampling excluded: tuner's
  ``duration_s``, and in the hand loop, timed the same way;
- best val acc: the validation accuracy of the best trial by validation loss, Optuna's
  ``best_trial`` (tuner's from ``tuner best``).

``--blas openblas`` preloads Debian's OpenBLAS, single-threaded, into both processes, and
``--blas bundled`` runs both on the reference BLAS the mlx-cpu wheel bundles (passing tuner
``--blas bundled`` where it has that option), so that the ratio shows tuner's own engineering.
By default each runs as a user would run it: the hand loop on the bundled BLAS, tuner on the
BLAS it picks. Which BLAS each process had loaded is read from its memory maps.

    python benchmarks/versus_hand_loop.py [--seconds 120] [--seeds 1] [--blas bundled|openblas]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TUNER = Path(sys.executable).with_name("tuner")
OPENBLAS = Path("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
# tuner's defaults for digits (plugins/tasks.py): the hand loop trains the same trials.
STEPS, BATCH_SIZE, EVAL_EVERY = 300, 64, 50
STUDY = "versus"
# Each column's key, and its heading on two lines.
KEYS = ("wall", "trials", "finished", "steps", "rate", "out_mlx", "out_trials", "acc")
TOP = ("wall", "trials", "finished", "steps", "steps", "outside", "outside", "best")
BOTTOM = ("s", "", "", "", "/ s", "MLX", "trials", "val acc")
FORMATS = dict(zip(KEYS, (".1f", ".0f", ".0f", ".0f", ".1f", ".1%", ".1%", ".1%"), strict=True))


def hand_loop(seconds: float, seed: int, storage: str) -> dict[str, Any]:
    """The search a user writes by hand; returns its counts and the times it spent in MLX."""
    import importlib.util
    import math

    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np
    import optuna

    # tuner's digits: the CSV inside scikit-learn, read without importing it (over 1 s).
    csv = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets/data/digits.csv.gz"
    table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1] / 16.0, table[:, -1].astype(np.int32)
    rng = np.random.default_rng(0)
    train, valid = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        cut = round(len(members) * 0.2)
        valid.append(members[:cut])
        train.append(members[cut:])
    train, valid = np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))
    x_train, y_train = mx.array(x[train]), mx.array(y[train])
    x_valid, y_valid = mx.array(x[valid]), mx.array(y[valid])
    spent = {"steps": 0, "step_s": 0.0, "eval_s": 0.0, "trial_s": 0.0, "median_s": 0.0}

    def loss_fn(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    def objective(trial: optuna.Trial) -> float:
        name = trial.suggest_categorical("optimizer", ["sgd", "adam", "adamw", "lion"])
        lr = optim.cosine_decay(trial.suggest_float("lr", 1e-4, 1.0, log=True), STEPS)
        if name == "sgd":
            optimizer = optim.SGD(lr, momentum=trial.suggest_float("momentum", 0.0, 0.99))
        elif name == "adam":
            optimizer = optim.Adam(lr)
        else:
            decay = trial.suggest_float(f"{name}.weight_decay", 1e-5, 1e-1, log=True)
            optimizer = (optim.AdamW if name == "adamw" else optim.Lion)(lr, weight_decay=decay)
        started, times = time.perf_counter(), []
        try:
            mx.random.seed(seed * 100_000 + trial.number)
            model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
            loss_and_grad = nn.value_and_grad(model, loss_fn)
            shuffle = np.random.default_rng([seed, trial.number])
            epochs = -(-STEPS * BATCH_SIZE // len(train))
            order = np.concatenate([shuffle.permutation(len(train)) for _ in range(epochs)])
            batches = mx.array(order[: STEPS * BATCH_SIZE].reshape(STEPS, BATCH_SIZE))
            for step in range(1, STEPS + 1):
                tick = time.perf_counter()
                batch = batches[step - 1]
                loss, grads = loss_and_grad(model, x_train[batch], y_train[batch])
                optimizer.update(model, grads)
                mx.eval(loss, model.parameters(), optimizer.state)
                times.append(time.perf_counter() - tick)
                if step % EVAL_EVERY:
                    continue
                tick = time.perf_counter()
                logits = model(x_valid)
                val_loss = nn.losses.cross_entropy(logits, y_valid, reduction="mean").item()
                accuracy = mx.mean(mx.argmax(logits, axis=-1) == y_valid).item()
                spent["eval_s"] += time.perf_counter() - tick
                # A run that blew up is a pruned one, not a failed one that stops optimize().
                if not math.isfinite(val_loss):
                    raise optuna.TrialPruned(f"validation loss {val_loss} at step {step}")
                trial.report(val_loss, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step}")
            trial.set_user_attr("accuracy", accuracy)
            return val_loss
        finally:
            spent["trial_s"] += time.perf_counter() - started
            if times:
                spent["steps"] += len(times)
                spent["step_s"] += sum(times)
                # tuner stores a trial's median step time: the same estimate, to compare.
                spent["median_s"] += len(times) * statistics.median(times)

    # A line a trial on stderr is what nobody running hundreds of trials keeps.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=optuna.storages.RDBStorage(storage),
        sampler=optuna.samplers.TPESampler(seed=seed),
        # tuner's; with reports every 50 steps it prunes exactly as Optuna's default does.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=EVAL_EVERY),
        direction="minimize",
    )
    study.optimize(objective, timeout=seconds)
    trials = study.get_trials(deepcopy=False)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        **spent,
        "trials": len(trials),
        "finished": sum(t.state in finished for t in trials),
        "best_acc": study.best_trial.user_attrs["accuracy"] if complete else None,
    }


def run(command: list[str], env: dict[str, str], cwd: str, seconds: float) -> dict[str, Any]:
    """Run ``command`` in a fresh process; return its wall time, stdout and BLAS."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # Half-way through, MLX is loaded and training: look at which BLAS it got.
        out, err = process.communicate(timeout=seconds / 2)
        blas = "?"
    except subprocess.TimeoutExpired:
        blas = blas_of(process.pid)
        out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        last = (err.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"{' '.join(command[:2])} … exited with {process.returncode}: {last}")
    return {"wall": wall, "out": out, "blas": blas}


def blas_of(pid: int) -> str:
    """Which BLAS the process ``pid`` (or a child of it) has loaded, from its memory maps."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid, *map(int, children.read_text().split())] if children.exists() else [pid]
    for each in pids:
        try:
            # numpy's own OpenBLAS is libscipy_openblas; only a system one serves MLX.
            if "/libopenblas" in Path(f"/proc/{each}/maps").read_text():
                return "openblas"
        except OSError:
            continue
    return "bundled"


def hand(seconds: float, seed: int, env: dict[str, str], folder: str) -> dict[str, Any]:
    """The hand loop's figures, from a fresh process of this script."""
    url = f"sqlite:///{folder}/hand.db"
    child = [sys.executable, __file__, "--seconds", str(seconds), "--seed", str(seed)]
    done = run([*child, "--child", url], env, folder, seconds)
    found = json.loads(done["out"].splitlines()[-1])
    wall = done["wall"]
    steps, evals = found["step_s"] / wall, found["eval_s"] / wall
    note = f"timed: steps {steps:.1%}, evals {evals:.1%}, outside both {1 - steps - evals:.1%}"
    return figures(done, found, found["median_s"], found["trial_s"], note)


def tuner(seconds: float, seed: int, env: dict[str, str], folder: str, flags: list[str]) -> dict:
    """``tuner search``'s figures, read back from its storage through tuner's results API."""
    url = f"sqlite:///{folder}/tuner.db"
    command = [str(TUNER), "search", "--timeout", str(seconds), "--trials", "1000000"]
    command += ["--storage", url, "--study", STUDY, "--seed", str(seed), "--quiet", *flags]
    done = run(command, env, folder, seconds)
    # Imported here, after the search: the hand loop's processes must never see tuner.
    from tuner import open_results

    with open_results(url) as results:
        trials = results.trials(STUDY)
        timed = [results.trial(STUDY, t.number) for t in trials if t.steps]
        # Like Optuna's best_trial, which the hand loop reads: complete trials only.
        best = [t for t in results.best(STUDY, 1) if t.outcome == "complete"]
    found = {
        "trials": len(trials),
        "finished": sum(t.outcome in ("complete", "pruned", "diverged") for t in trials),
        "steps": sum(t.steps or 0 for t in trials),
        "best_acc": best[0].metrics.get("accuracy") if best else None,
    }
    mlx = sum(t.steps * t.step_time_s for t in timed if t.step_time_s)
    in_trials = sum(t.duration_s or 0.0 for t in trials)
    # What a trial spends beyond its steps: building kernels, evals, reports and pruning checks.
    beyond = (in_trials - mlx) / done["wall"]
    note = f"in trials beyond steps × median step: {beyond:.1%} (no eval time stored)"
    return figures(done, found, mlx, in_trials, note)


def figures(done: dict, found: dict, mlx: float, in_trials: float, note: str) -> dict[str, Any]:
    """One row of the table, as numbers, keyed by its column."""
    wall = done["wall"]
    return {
        "wall": wall,
        "trials": found["trials"],
        "finished": found["finished"],
        "steps": found["steps"],
        "rate": found["steps"] / wall,
        "out_mlx": 1 - mlx / wall,
        "out_trials": 1 - in_trials / wall,
        "acc": found["best_acc"],
        "note": f"{done['blas']} BLAS; {note}",
    }


def header(title: str) -> None:
    print(" " * 12 + "".join(f"{top:>10}" for top in TOP))
    print(f"{title:<12}" + "".join(f"{bottom:>10}" for bottom in BOTTOM))


def show(label: str, row: dict[str, Any]) -> None:
    cells = ["-" if row[key] is None else f"{row[key]:{FORMATS[key]}}" for key in KEYS]
    print(f"  {label:<10}" + "".join(f"{cell:>10}" for cell in cells))


def median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each column's median over the seeds (the accuracy over the seeds that have one)."""
    columns = {key: [row[key] for row in rows if row[key] is not None] for key in KEYS}
    return {key: statistics.median(values) if values else None for key, values in columns.items()}


def environment(blas: str | None) -> dict[str, str]:
    """The environment of both processes: the BLAS asked for, or each one's own default."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TUNER_BLAS")}
    env.pop("OPENBLAS_NUM_THREADS", None)
    if blas == "openblas":
        if not OPENBLAS.exists():
            print(f"{OPENBLAS} is missing: apt-get install libopenblas0-pthread", file=sys.stderr)
            sys.exit(2)
        # One thread: on a small model thread hand-offs cost more than they give.
        env.update(LD_PRELOAD=str(OPENBLAS), OPENBLAS_NUM_THREADS="1")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="budget of each (default 120)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat with seeds 0..N-1")
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--blas", choices=("bundled", "openblas"), help="the same BLAS for both")
    parser.add_argument("--child", metavar="STORAGE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(hand_loop(args.seconds, args.seed, args.child)))
        return
    env = environment(args.blas)
    blas = args.blas or "each its own default"
    helps = subprocess.run([TUNER, "search", "--help"], capture_output=True, text=True, env=env)
    # A tuner that picks its BLAS itself is told to keep the bundled one, as the hand loop does.
    flags = ["--blas", "bundled"] if args.blas == "bundled" and "--blas" in helps.stdout else []
    print(f"digits: {STEPS} steps of {BATCH_SIZE}, eval every {EVAL_EVERY}; {args.seconds:g} s")
    print(f"each, one after the other; BLAS: {blas}\n")
    rows: dict[str, list[dict[str, Any]]] = {"hand loop": [], "tuner": []}
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="tuner-versus-") as folder:
            rows["hand loop"].append(hand(args.seconds, seed, env, folder))
            rows["tuner"].append(tuner(args.seconds, seed, env, folder, flags))
        header(f"seed {seed}")
        for label, runs in rows.items():
            show(label, runs[-1])
        for label, runs in rows.items():
            print(f"  {label}: {runs[-1]['note']}")
        ratio = rows["tuner"][-1]["rate"] / rows["hand loop"][-1]["rate"]
        print(f"  tuner / hand loop, steps/s: {ratio:.2f}×\n")
    if args.seeds > 1:
        header("median")
        for label, runs in rows.items():
            show(label, median(runs))
        pairs = zip(rows["tuner"], rows["hand loop"], strict=True)
        ratios = [t["rate"] / h["rate"] for t, h in pairs]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"  tuner / hand loop, steps/s: median {statistics.median(ratios):.2f}× ({each})\n")
    print("outside MLX: 1 - (steps × the trial's median step time, summed) / wall, for both.")
    print("issue 14's targets for tuner / hand loop steps/s: ≥ 2× with the same BLAS,")
    print("≥ 4× with each one's defaults.")


if __name__ == "__main__":
    main()
