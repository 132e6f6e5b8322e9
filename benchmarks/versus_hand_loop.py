"""How many training steps a second ``tuner search`` affords against the search a user writes by
hand with Optuna and MLX (issue 14), for the same wall-clock budget on ``digits``, and how good
the answers of both are (issue 15).

The hand loop is below, without any tuner import: Optuna's ``RDBStorage`` on a new SQLite file,
a seeded ``TPESampler``, the ``MedianPruner`` (5 startup trials), and an eager MLX loop
(``nn.value_and_grad``, ``optimizer.update``, ``mx.eval`` each step) on tuner's digits data and
split (copied: a stratified 20 % test split taken out first, then the rest split 80/20 into
1151 train and 287 valid images), model (MLP 64-128-10), 300 steps of 64 and validation every
50 steps, reported to Optuna for pruning. It samples sgd, adam, adamw or lion with a cosine
decay and a log-uniform peak rate in ``1e-4..1`` (tuner's default range), and minimises the
validation loss, as tuner does by default. ``tuner search --timeout SECONDS`` runs with its
defaults (every optimizer and schedule, one worker process a core with ``--jobs auto``, then
its confirmation runs, ``--confirm 3x3``) on a new SQLite file; ``--one-process`` adds a row
for ``--jobs 1``. With several workers, a trial's time is summed over them, so the "outside
trials" share of tuner's row can fall below zero. Each runs in a fresh process, one after the
other; MLX's built kernels are reused from its disk cache, as in any run on a machine but the
first.

What is printed, for each:

- search s: the seconds from its process's start to the end of its last trial, imports
  included, timed here. tuner's confirmation runs come after its ``--timeout`` and are left out;
  its process's whole wall time, and the seconds after its last trial (confirmation runs,
  leaderboard, exit), are printed below the table;
- trials; finished: complete or pruned (diverged included); steps: optimizer steps trained in
  the search's trials; steps / s: steps / search s;
- outside MLX: 1 - MLX training time / search s, estimated the same way for both. tuner stores
  a trial's median step time (``step_time_s``, as ``tuner show`` gives it; a step is the batch
  gather, the step and its ``mx.eval``), and the hand loop times its steps the same way with
  ``perf_counter``: MLX time is each trial's steps × that median, summed. So evals, kernel
  builds and slow outlying steps count as outside. The hand loop also prints its exact sums of
  step and eval times, and the share outside both; tuner stores no eval times;
- outside trials: 1 - trial time / search s, a trial's time being from its model's creation to
  the end of its training, reports and pruning checks included, sampling excluded: tuner's
  ``duration_s`` (a population's once, its longest member's), and in the hand loop, timed the
  same way;
- val acc, best loss: the validation accuracy of the best trial by validation loss, the search's
  objective (Optuna's ``best_trial``; tuner's first of ``best``, complete trials only);
- val acc, highest: the highest validation accuracy of any complete trial.

Then both answers are trained again by the same code, this script's own eager loop written as
the hand loop is: tuner's confirmed winner, as ``tuner export --format json`` gives it, built by
``tuner.build_optimizer``, and the hand loop's best trial by its objective, built by the hand
loop's own code from its parameters (``optuna.trial.FixedTrial``). Each trains 300 steps of 64
on the train split with the same 5 seeds (the same initial weights and batch order for both,
seeds no trial of either search used), in a fresh process on the hand loop's BLAS, and is
measured on the 359 test images, which neither search read. Their mean test accuracies, and
tuner's own confirmation figures (3 seeds, its compiled step), are printed.

Below the table, tuner's row notes its mean population: its trials over the trainings they
took, a trial trained alone counting as one.

``--without-populations`` runs ``tuner search --population 1`` too, after the other two with
the same seed and budget (issue 18: populations must not lower the best validation accuracy),
as a third row, ``tuner K=1``, and prints its steps/s and accuracies beside tuner's.

``--checkout DIR`` runs another checkout's tuner (``checkout.py``) in tuner's rows.

``--default-search`` then times ``tuner search`` with no argument but a temporary ``--storage``
(60 trials, then its confirmation), once, against issue 15's 2 minutes; ``--seeds 0
--default-search`` times it alone.

``--blas openblas`` preloads Debian's OpenBLAS, single-threaded, into every process, and
``--blas bundled`` runs them on the reference BLAS the mlx-cpu wheel bundles (passing tuner
``--blas bundled`` where it has that option, and ``TUNER_BLAS=bundled`` to the default search),
so that the ratio shows tuner's own engineering. By default each runs as a user would run it:
the hand loop on the bundled BLAS, tuner on the BLAS it picks. Which BLAS each process had
loaded is read from its memory maps.

    python benchmarks/versus_hand_loop.py [--seconds 120] [--seeds 1] [--blas bundled|openblas]
                                          [--without-populations] [--default-search]
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

from checkout import COMMAND, checkout_env

TUNER = Path(sys.executable).with_name("tuner")
# How tuner is run: this environment's, or another checkout's (--checkout).
TUNER_COMMAND = [str(TUNER)]
OPENBLAS = Path("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
# tuner's defaults for digits (plugins/tasks.py): the hand loop trains the same trials.
STEPS, BATCH_SIZE, EVAL_EVERY = 300, 64, 50
STUDY = "versus"
# The seeds of the runs that train both answers again: apart from every trial's seed.
RETRAIN_SEEDS = [10**9 + i for i in range(5)]
# Issue 15: the default search, with its confirmation, within this many seconds.
DEFAULT_TARGET_S = 120
# Each column's key, and its heading on two lines.
KEYS = ("wall", "trials", "finished", "steps", "rate", "out_mlx", "out_trials", "acc", "max_acc")
TOP = ("search", "trials", "finished", "steps", "steps", "outside", "outside", "val acc", "val acc")
BOTTOM = ("s", "", "", "", "/ s", "MLX", "trials", "best loss", "highest")
FORMATS = dict(
    zip(KEYS, (".1f", ".0f", ".0f", ".0f", ".1f", ".1%", ".1%", ".1%", ".1%"), strict=True)
)


def digits() -> tuple[Any, Any, dict[str, Any]]:
    """The hand loop's data: tuner's digits, pixels and labels, and its split's indices."""
    import importlib.util

    import numpy as np

    # tuner's digits: the CSV it ships, scikit-learn's, read without importing tuner (MLX).
    csv = Path(importlib.util.find_spec("tuner_builtins").origin).parent / "digits.csv.gz"
    table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1] / 16.0, table[:, -1].astype(np.int32)

    def split(y: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        # tuner's stratified split, copied: each class in proportion, seed 0.
        rng = np.random.default_rng(0)
        kept, held = [], []
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            cut = round(len(members) * fraction)
            held.append(members[:cut])
            kept.append(members[cut:])
        return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))

    # The test images first, then the rest 80/20 into train and valid, as tuner splits them.
    rest, test = split(y, 0.2)
    train, valid = (rest[part] for part in split(y[rest], 0.2))
    return x, y, {"train": train, "valid": valid, "test": test}


def hand_optimizer(trial: Any) -> Any:
    """The hand loop's optimizer for ``trial``: a trial of its study or a ``FixedTrial``."""
    import mlx.optimizers as optim

    name = trial.suggest_categorical("optimizer", ["sgd", "adam", "adamw", "lion"])
    lr = optim.cosine_decay(trial.suggest_float("lr", 1e-4, 1.0, log=True), STEPS)
    if name == "sgd":
        return optim.SGD(lr, momentum=trial.suggest_float("momentum", 0.0, 0.99))
    if name == "adam":
        return optim.Adam(lr)
    decay = trial.suggest_float(f"{name}.weight_decay", 1e-5, 1e-1, log=True)
    return (optim.AdamW if name == "adamw" else optim.Lion)(lr, weight_decay=decay)


def hand_loop(seconds: float, seed: int, storage: str) -> dict[str, Any]:
    """The search a user writes by hand; returns its counts and the times it spent in MLX."""
    import math

    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    import optuna

    x, y, split = digits()
    train, valid = split["train"], split["valid"]
    x_train, y_train = mx.array(x[train]), mx.array(y[train])
    x_valid, y_valid = mx.array(x[valid]), mx.array(y[valid])
    spent = {"steps": 0, "step_s": 0.0, "eval_s": 0.0, "trial_s": 0.0, "median_s": 0.0}

    def loss_fn(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    def objective(trial: optuna.Trial) -> float:
        optimizer = hand_optimizer(trial)
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
            # The clock of the process that timed this one: when the search's last trial ended.
            spent["ended"] = time.time()
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
    best = study.best_trial if complete else None
    return {
        **spent,
        "trials": len(trials),
        "finished": sum(t.state in finished for t in trials),
        "best_acc": best.user_attrs["accuracy"] if best else None,
        "max_acc": max(t.user_attrs["accuracy"] for t in complete) if complete else None,
        "best": {"number": best.number, "params": best.params} if best else None,
    }


def retrain(path: str) -> dict[str, Any]:
    """Train tuner's confirmed winner and the hand loop's best again, by the same eager loop,
    with the same seeds; return each one's test accuracy and loss a seed."""
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    import optuna

    from tuner import build_optimizer

    answers = json.loads(Path(path).read_text())
    x, y, split = digits()
    train, test = split["train"], split["test"]
    x_train, y_train = mx.array(x[train]), mx.array(y[train])
    x_test, y_test = mx.array(x[test]), mx.array(y[test])

    def loss_fn(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    def train_and_test(make_optimizer: Any, seed: int) -> tuple[float, float]:
        mx.random.seed(seed)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        optimizer = make_optimizer()
        loss_and_grad = nn.value_and_grad(model, loss_fn)
        shuffle = np.random.default_rng(seed)
        epochs = -(-STEPS * BATCH_SIZE // len(train))
        order = np.concatenate([shuffle.permutation(len(train)) for _ in range(epochs)])
        batches = mx.array(order[: STEPS * BATCH_SIZE].reshape(STEPS, BATCH_SIZE))
        for step in range(STEPS):
            loss, grads = loss_and_grad(model, x_train[batches[step]], y_train[batches[step]])
            optimizer.update(model, grads)
            mx.eval(loss, model.parameters(), optimizer.state)
        logits = model(x_test)
        test_loss = nn.losses.cross_entropy(logits, y_test, reduction="mean").item()
        return mx.mean(mx.argmax(logits, axis=-1) == y_test).item(), test_loss

    makers = {
        "tuner": lambda: build_optimizer(answers["tuner"], steps=STEPS),
        "hand": lambda: hand_optimizer(optuna.trial.FixedTrial(answers["hand"])),
    }
    found: dict[str, Any] = {}
    for name, make in makers.items():
        started = time.perf_counter()
        runs = [train_and_test(make, seed) for seed in RETRAIN_SEEDS]
        found[name] = {
            "acc": [acc for acc, _ in runs],
            "loss": [loss for _, loss in runs],
            "s": time.perf_counter() - started,
        }
    # It ends too soon to be looked at from outside: it looks at its own memory maps.
    return {**found, "blas": blas_of(os.getpid())}


def run(command: list[str], env: dict[str, str], cwd: str, seconds: float) -> dict[str, Any]:
    """Run ``command`` in a fresh process; return its wall time, start, stdout and BLAS."""
    started, begun = time.perf_counter(), time.time()
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
    return {"wall": wall, "begun": begun, "out": out, "blas": blas}


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
    search = found["ended"] - done["begun"]
    steps, evals = found["step_s"] / search, found["eval_s"] / search
    note = f"timed: steps {steps:.1%}, evals {evals:.1%}, outside both {1 - steps - evals:.1%}"
    note += f"; process {done['wall']:.1f} s"
    row = figures(search, done, found, found["median_s"], found["trial_s"], note)
    return {**row, "best": found["best"]}


def tuner(seconds: float, seed: int, env: dict[str, str], folder: str, flags: list[str]) -> dict:
    """``tuner search``'s figures, read back from its storage through tuner's results API."""
    url = f"sqlite:///{folder}/tuner.db"
    command = [*TUNER_COMMAND, "search", "--timeout", str(seconds), "--trials", "1000000"]
    command += ["--storage", url, "--study", STUDY, "--seed", str(seed), "--quiet", *flags]
    done = run(command, env, folder, seconds)
    # Imported here, after the search: the hand loop's processes must never see tuner.
    from tuner import open_results

    with open_results(url) as results:
        trials = results.trials(STUDY)
        timed = [results.trial(STUDY, t.number) for t in trials if t.steps]
        # Like Optuna's best_trial, which the hand loop reads: complete trials only.
        best = [t for t in results.best(STUDY, 1) if t.outcome == "complete"]
        complete = [t.metrics["accuracy"] for t in trials if t.outcome == "complete"]
        confirmation = results.confirmation(STUDY)
    found = {
        "trials": len(trials),
        "finished": sum(t.outcome in ("complete", "pruned", "diverged") for t in trials),
        "steps": sum(t.steps or 0 for t in trials),
        "best_acc": best[0].metrics.get("accuracy") if best else None,
        "max_acc": max(complete) if complete else None,
    }
    ended = max(t.finished_at.timestamp() for t in trials if t.finished_at)
    search = ended - done["begun"]
    mlx = sum(t.steps * t.step_time_s for t in timed if t.step_time_s)
    # A population's members train at once: their time counts once, as its longest member's.
    longest: dict[tuple[str, int], float] = {}
    for t in trials:
        key = ("trial", t.number) if t.population is None else ("population", t.population)
        longest[key] = max(longest.get(key, 0.0), t.duration_s or 0.0)
    in_trials = sum(longest.values())
    # What a trial spends beyond its steps: building kernels, evals, reports and pruning checks.
    beyond = (in_trials - mlx) / search
    runs = [each for config in confirmation.configs for each in config.runs]
    note = f"mean population {len(trials) / len(longest):.2f} trials"
    note += f"; in trials beyond steps × median step: {beyond:.1%} (no eval time stored)"
    note += f"; process {done['wall']:.1f} s, of which after its last trial "
    note += f"{done['wall'] - search:.1f} s: {len(runs)} confirmation runs "
    note += f"({sum(r.duration_s for r in runs):.1f} s in them), leaderboard, exit"
    row = figures(search, done, found, mlx, in_trials, note)
    winner = confirmation.winner
    return {**row, "url": url, "confirmed": winner, "verdict": confirmation.verdict}


def figures(
    search: float, done: dict, found: dict, mlx: float, in_trials: float, note: str
) -> dict[str, Any]:
    """One row of the table, as numbers, keyed by its column."""
    return {
        "wall": search,
        "trials": found["trials"],
        "finished": found["finished"],
        "steps": found["steps"],
        "rate": found["steps"] / search,
        "out_mlx": 1 - mlx / search,
        "out_trials": 1 - in_trials / search,
        "acc": found["best_acc"],
        "max_acc": found["max_acc"],
        "note": f"{done['blas']} BLAS; {note}",
    }


def answers(hand_row: dict, tuner_row: dict, env: dict[str, str], folder: str) -> dict | None:
    """Both answers trained again by the same code and seeds; their test figures."""
    if hand_row["best"] is None or tuner_row["confirmed"] is None:
        print("  (no answer to train again: a search had no complete trial or confirmation)\n")
        return None
    command = [*TUNER_COMMAND, "export", STUDY, "--format", "json", "--storage", tuner_row["url"]]
    config = json.loads(run(command, env, folder, 60)["out"])
    path = Path(folder) / "answers.json"
    path.write_text(json.dumps({"tuner": config, "hand": hand_row["best"]["params"]}))
    done = run([sys.executable, __file__, "--retrain", str(path)], env, folder, 10)
    found = json.loads(done["out"].splitlines()[-1])
    confirmed = tuner_row["confirmed"]
    trial = confirmed.trial
    params = hand_row["best"]["params"]
    about = {
        "tuner": f"tuner's confirmed winner, trial {trial.number}: {trial.optimizer}+"
        f"{trial.schedule}, lr {trial.lr:.3g}, warmup {trial.params.get('warmup', 0):.2f}",
        "hand": f"the hand loop's best, trial {hand_row['best']['number']}: "
        f"{params['optimizer']}+cosine, lr {params['lr']:.3g}",
    }
    n = len(RETRAIN_SEEDS)
    print(f"  test accuracy, {n} seeds, {STEPS} steps, one eager loop ({found['blas']} BLAS):")
    for name in ("tuner", "hand"):
        accs = found[name]["acc"]
        each = ", ".join(f"{a:.1%}" for a in accs)
        loss = statistics.mean(found[name]["loss"])
        print(f"    {about[name]}")
        print(
            f"      mean {statistics.mean(accs):.2%} ± {statistics.stdev(accs):.2%} ({each}); "
            f"test loss {loss:.4f}; {found[name]['s']:.1f} s"
        )
    means = {name: statistics.mean(found[name]["acc"]) for name in ("tuner", "hand")}
    difference = means["tuner"] - means["hand"]
    print(
        f"    tuner - hand loop: {difference * 100:+.2f} points; "
        f"tuner / hand loop: {means['tuner'] / means['hand']:.4f}"
    )
    test = confirmed.test
    print(
        f"  tuner's own confirmation of it: {len(confirmed.values)} seeds, mean val_loss "
        f"{confirmed.mean:.4f}, mean test accuracy {test.get('test_accuracy', float('nan')):.2%}"
    )
    print(f"  {tuner_row['verdict']}\n")
    return {**means, "difference": difference}


def default_search(env: dict[str, str], blas: str | None) -> None:
    """Time ``tuner search`` with nothing but a temporary storage, and print it."""
    if blas == "bundled":
        env = {**env, "TUNER_BLAS": "bundled"}
    with tempfile.TemporaryDirectory(prefix="tuner-default-") as folder:
        url = f"sqlite:///{folder}/default.db"
        # Its BLAS is looked at 4 s in, while it trains.
        done = run([*TUNER_COMMAND, "search", "--storage", url], env, folder, 8)
        from tuner import open_results

        with open_results(url) as results:
            (study,) = results.study_names()
            trials = results.trials(study)
            runs = [each for config in results.confirmation(study).configs for each in config.runs]
    ended = max(t.finished_at.timestamp() for t in trials if t.finished_at)
    search = ended - done["begun"]
    print(f"default `tuner search --storage sqlite:///TEMP` ({done['blas']} BLAS):")
    print(
        f"  {done['wall']:.1f} s, start to exit, against issue 15's {DEFAULT_TARGET_S} s: "
        f"{done['wall'] / DEFAULT_TARGET_S:.0%} of it"
    )
    print(
        f"  {len(trials)} trials in {search:.1f} s; then {done['wall'] - search:.1f} s: "
        f"{len(runs)} confirmation runs ({sum(r.duration_s for r in runs):.1f} s in them), "
        "leaderboard, exit\n"
    )


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
    """The environment of every process: the BLAS asked for, or each one's own default."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TUNER_BLAS")}
    env.pop("OPENBLAS_NUM_THREADS", None)
    if blas == "openblas":
        if not OPENBLAS.exists():
            print(f"{OPENBLAS} is missing: apt-get install libopenblas0-pthread", file=sys.stderr)
            sys.exit(2)
        # One thread: on a small model thread hand-offs cost more than they give.
        env.update(LD_PRELOAD=str(OPENBLAS), OPENBLAS_NUM_THREADS="1")
    return env


def summary(rows: dict[str, list[dict[str, Any]]], tests: list[dict[str, float]]) -> None:
    """The medians over the seeds, and issue 15's figures against its targets."""
    if len(rows["tuner"]) > 1:
        header("median")
        for label, runs in rows.items():
            show(label, median(runs))
        pairs = zip(rows["tuner"], rows["hand loop"], strict=True)
        ratios = [t["rate"] / h["rate"] for t, h in pairs]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"  tuner / hand loop, steps/s: median {statistics.median(ratios):.2f}× ({each})")
        if "tuner K=1" in rows:
            pairs = zip(rows["tuner"], rows["tuner K=1"], strict=True)
            ratios = [t["rate"] / one["rate"] for t, one in pairs]
            each = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"  tuner / tuner K=1, steps/s: median {statistics.median(ratios):.2f}× ({each})")
        print()
    print("search s: from the process's start to the end of its last trial (tuner's confirmation")
    print("runs after it are left out). outside MLX: 1 - (steps × the trial's median step time,")
    print("summed) / search s, for both.")
    print("issue 14's targets for tuner / hand loop steps/s: ≥ 2× with the same BLAS,")
    print("≥ 4× with each one's defaults.")
    print("issue 15's targets, tuner against the hand loop, medians over the seeds:")
    targets = (
        ("acc", "val acc of the best trial by val loss (target: tuner ≥ hand loop)"),
        ("max_acc", "val acc, the highest of any complete trial (no target)"),
    )
    for key, what in targets:
        values = {label: median(runs)[key] for label, runs in rows.items()}
        if None not in values.values():
            print(f"  {what}:")
            line = f"    tuner {values['tuner']:.1%}, hand loop {values['hand loop']:.1%}"
            if "tuner K=1" in values:
                line += f", tuner K=1 {values['tuner K=1']:.1%}"
            print(line)
    if tests:
        differences = [t["difference"] * 100 for t in tests]
        each = ", ".join(f"{d:+.2f}" for d in differences)
        tuner_mean = statistics.median(t["tuner"] for t in tests)
        hand_mean = statistics.median(t["hand"] for t in tests)
        print(
            f"  test acc, mean over {len(RETRAIN_SEEDS)} seeds trained again by one loop"
            "\n  (target: tuner's confirmed winner ≥ the hand loop's best):"
        )
        print(
            f"    tuner {tuner_mean:.2%}, hand loop {hand_mean:.2%}; tuner - hand loop "
            f"{statistics.median(differences):+.2f} points (each seed: {each})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="budget of each (default 120)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat with seeds 0..N-1")
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--blas", choices=("bundled", "openblas"), help="the same BLAS for all")
    parser.add_argument(
        "--without-populations",
        action="store_true",
        help="also run tuner search --population 1, as a third row",
    )
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="also run tuner search --jobs 1 (the default is one worker a core), as a row",
    )
    parser.add_argument(
        "--default-search",
        action="store_true",
        help=f"then time `tuner search` with its defaults against {DEFAULT_TARGET_S} s",
    )
    parser.add_argument("--checkout", type=Path, help="run this checkout's tuner")
    parser.add_argument("--child", metavar="STORAGE", help=argparse.SUPPRESS)
    parser.add_argument("--retrain", metavar="ANSWERS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(hand_loop(args.seconds, args.seed, args.child)))
        return
    if args.retrain:
        print(json.dumps(retrain(args.retrain)))
        return
    env = environment(args.blas)
    if args.checkout:
        env = checkout_env(args.checkout, env)
        TUNER_COMMAND[:] = COMMAND
    blas = args.blas or "each its own default"
    helps = subprocess.run(
        [*TUNER_COMMAND, "search", "--help"], capture_output=True, text=True, env=env
    )
    # A tuner that picks its BLAS itself is told to keep the bundled one, as the hand loop does.
    flags = ["--blas", "bundled"] if args.blas == "bundled" and "--blas" in helps.stdout else []
    if args.seeds > 0:
        print(f"digits: {STEPS} steps of {BATCH_SIZE}, eval every {EVAL_EVERY}; {args.seconds:g} s")
        print(f"each, one after the other; BLAS: {blas}\n")
    rows: dict[str, list[dict[str, Any]]] = {"hand loop": [], "tuner": []}
    if args.without_populations:
        rows["tuner K=1"] = []
    if args.one_process:
        rows["tuner --jobs 1"] = []
    tests = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="tuner-versus-") as folder:
            rows["hand loop"].append(hand(args.seconds, seed, env, folder))
            rows["tuner"].append(tuner(args.seconds, seed, env, folder, flags))
            if args.without_populations:
                alone = f"{folder}/alone"
                os.mkdir(alone)
                single = [*flags, "--population", "1"]
                rows["tuner K=1"].append(tuner(args.seconds, seed, env, alone, single))
            if args.one_process:
                one = f"{folder}/one"
                os.mkdir(one)
                rows["tuner --jobs 1"].append(
                    tuner(args.seconds, seed, env, one, [*flags, "--jobs", "1"])
                )
            header(f"seed {seed}")
            for label, runs in rows.items():
                show(label, runs[-1])
            for label, runs in rows.items():
                print(f"  {label}: {runs[-1]['note']}")
            ratio = rows["tuner"][-1]["rate"] / rows["hand loop"][-1]["rate"]
            print(f"  tuner / hand loop, steps/s: {ratio:.2f}×")
            test = answers(rows["hand loop"][-1], rows["tuner"][-1], env, folder)
            if test is not None:
                tests.append(test)
    if args.seeds > 0:
        summary(rows, tests)
    if args.default_search:
        if args.seeds > 0:
            print()
        default_search(env, args.blas)


if __name__ == "__main__":
    main()
