"""``tuner.search``: the search that ``tuner search`` runs, for a notebook or a script, with a
registered task or one given as its parts."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tuner import blas as blas_choice
from tuner.api.runner import prepare, run
from tuner.api.study_results import StudyResults
from tuner.errors import BadInput
from tuner.hookspecs import hookimpl
from tuner.plan import SearchConfig, parse_confirm, parse_names, parse_population
from tuner.plugins import load_plugins, refuse_failed
from tuner.query import DEFAULT_STORAGE
from tuner.search_file import file_options
from tuner.specs import Metric, TaskSpec

if TYPE_CHECKING:
    from tuner.study import StudyCallback

# The name of a task given by its parts, unless ``task`` names it.
CUSTOM = "custom"


@file_options
def search(
    task: str | None = None,
    *,
    model: Callable[[], Any] | None = None,
    train: tuple[Any, Any] | None = None,
    valid: tuple[Any, Any] | None = None,
    loss: Callable[[Any, Any, Any], Any] | None = None,
    metrics: Mapping[str, Metric | Callable[..., Any]] | Sequence[Any] | None = None,
    test: tuple[Any, Any] | None = None,
    storage: str = DEFAULT_STORAGE,
    study: str | None = None,
    trials: int = 60,
    timeout: float | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    eval_every: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    optimizers: str | Sequence[str] | None = None,
    schedules: str | Sequence[str] | None = None,
    space: Sequence[str] | Mapping[str, Any] = (),
    metric: str | None = None,
    sampler: str = "tpe",
    pruner: str = "quartile",
    plugins: str | Sequence[str] = (),
    blas: str | None = None,
    defaults: bool = True,
    confirm: str | int | tuple[int, int] = "3x3",
    population: str | int = "auto",
    quiet: bool = False,
    callbacks: Sequence[StudyCallback] = (),
    # Read by file_options, which passes on the options it holds instead.
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
) -> StudyResults:
    """Run a study, as ``tuner search`` does, and return its results.

    ``task`` names a registered task. Or give the task's parts: ``model`` (a function that
    returns a new ``mlx.nn.Module``), ``train`` and ``valid`` (``(x, y)`` arrays), ``loss(model,
    x, y)`` and, optionally, ``metrics`` and a held-out ``test`` set ``(x, y)``, which only
    the confirmation runs read; ``task`` then names it (``"custom"`` by default), and
    it is searched with ``steps`` (300), ``batch_size`` (64) and ``eval_every`` (50) unless
    they are given. The arrays may be numpy's, or anything numpy takes: floats become float32,
    whole numbers and booleans keep their type (class labels stay integers). ``metrics`` maps
    names to functions ``fn(model, x, y)`` that return a scalar ``mx.array``, or is a list of
    such functions, each named by its ``__name__``; a plain function is maximized, and
    ``Metric(fn, "minimize")`` minimizes it. The model, the loss and each metric are tried
    once on a few validation rows before anything is written, as the command line does.

    The other options are those of ``tuner search``, with the same defaults; running again with
    the same ``study`` continues it. ``optimizers`` and ``schedules`` are lists of names, or one
    string of them separated by commas, as on the command line. ``confirm`` is ``--confirm``:
    ``"KxS"`` or ``(K, S)`` trains the K best configurations again after the search, with S
    seeds each; ``0`` trains none. ``population`` is ``--population``: ``"auto"``, or K, the
    trials of one optimizer, schedule and discrete settings trained together. A progress bar
    counts the trials, as a widget in a notebook and on stderr elsewhere; ``quiet=True`` shows
    none.

    ``space`` narrows the search space as ``--space`` does: its expressions
    (``["lr=1e-4..1e-1:log"]``), or a mapping of the same parameters to ranges, values or
    lists of values to choose from: ``{"lr": (1e-4, 1e-1, "log"), "sgd.momentum": 0.9,
    "sgd.nesterov": [True, False]}``; a tuple is a range, and a dict ``{"low": 1e-4, "high":
    0.1, "log": True}`` or a string ``"1e-4..1e-1:log"`` are too, as in a search file.
    ``config`` is a search file (the path of its TOML, as ``tuner search --config`` reads it)
    or the mapping it holds: its options are taken where these are not passed, its space
    overridden parameter by parameter by ``space``.

    ``callbacks`` are Optuna study callbacks, ``callback(study, frozen_trial)``, called after
    each trial as ``study.optimize`` calls them, once tuner has stored the trial: Optuna's
    integrations, or :func:`tuner.trackers.tracker`, which logs each trial with its curve to
    MLflow or W&B.

    ``blas`` is ``"auto"`` (OpenBLAS where installed, on Linux) or ``"bundled"`` (the mlx wheel's
    own); None reads ``TUNER_BLAS``. It counts only before MLX is first imported, and
    ``import tuner`` makes MLX load OpenBLAS whoever imports it next: import tuner before mlx.
    When mlx came first, MLX keeps its bundled BLAS, and a search on the CPU warns that it is
    several times slower.

    Ctrl-C (interrupting a notebook's kernel) stops the trial in flight, which is recorded as
    interrupted, and returns the results so far. Bad options raise
    :class:`tuner.errors.BadInput` with the one-line message the command prints.
    """
    _load_blas(blas, device)
    confirm_counts = _confirm(confirm)
    parts = {"model": model, "train": train, "valid": valid, "loss": loss}
    extra: list[str | object] = [plugins] if isinstance(plugins, str) else list(plugins)
    if any(part is not None for part in parts.values()):
        missing = [name for name, part in parts.items() if part is None]
        if missing:
            raise BadInput(f"a task given by its parts needs {', '.join(missing)} too")
        # Here, not at the top: it imports MLX, once the BLAS is chosen.
        from tuner.parts import inline_task

        task = task or CUSTOM
        built = inline_task(model, train, valid, loss, metrics, test)  # type: ignore[arg-type]
        extra.append(_Inline(TaskSpec(task, lambda: built, "given to tuner.search")))
    elif metrics is not None or test is not None:
        raise BadInput(
            "metrics and test go with a task given by its parts: give model, train, valid and "
            "loss too, or register the task with them"
        )
    config = SearchConfig(
        task=task,
        trials=trials,
        timeout=timeout,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        study=study,
        seed=seed,
        device=device,
        # "adam,sgd", as on the command line, or a list: never a string's letters.
        optimizers=None if optimizers is None else parse_names(optimizers),
        schedules=None if schedules is None else parse_names(schedules),
        space=tuple(space),
        sampler=sampler,
        pruner=pruner,
        metric=metric,
        defaults=defaults,
        confirm=confirm_counts,
        population=parse_population(str(population)),
        command=f"tuner.search(task={task!r}, trials={trials}, seed={seed})",
    )
    registry = load_plugins(extra)
    refuse_failed(registry, plugins)
    for error in registry.errors:
        # 3: the caller's line, above search and file_options.
        warnings.warn(str(error), stacklevel=3)
    stop = threading.Event()
    with _stopped_by_ctrl_c(stop):
        plan = prepare(config, registry, storage)
        # Here: tqdm.auto imports IPython where it is installed, which the command line,
        # importing this module, does not need.
        from tuner.progress_bar import ProgressBar

        runs = confirm_counts[0] * confirm_counts[1]
        bar = None if quiet else ProgressBar(trials, plan.config.metric or "value", runs)
        try:
            return run(plan, storage, bar, stop, plugins, callbacks)
        finally:
            if bar is not None:
                bar.close()


def _confirm(confirm: str | int | tuple[int, int]) -> tuple[int, int]:
    """``confirm`` as ``(K, S)``: ``--confirm``'s ``"KxS"``, a pair, or 0 for none."""
    if isinstance(confirm, str):
        return parse_confirm(confirm)
    if isinstance(confirm, int) and confirm == 0:
        return 0, 0
    if isinstance(confirm, tuple | list) and len(confirm) == 2:
        top, seeds = confirm
        if all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in confirm):
            return top, seeds
    raise BadInput(
        f"confirm={confirm!r}: give (K, S) or 'KxS', the K best configurations with S seeds "
        "each, such as (3, 3), or 0 for none"
    )


_warned_blas = False


def _load_blas(choice: str | None, device: str | None) -> None:
    # The plugins and the task, loaded next, import MLX: the BLAS goes first.
    global _warned_blas
    running = blas_choice.load(choice)
    if running is None or not running.late or _warned_blas:
        return
    # Loaded already, since the BLAS is late: only MLX's CPU calls it.
    import mlx.core as mx

    if device == "gpu" or (device is None and mx.is_available(mx.gpu)):
        return
    _warned_blas = True
    warnings.warn(
        f"MLX runs its {running.name}: mlx was imported before tuner, which would have "
        "loaded OpenBLAS, installed and several times faster. Restart the kernel (or the "
        "process) and import tuner before mlx; blas='bundled' silences this.",
        # The caller's line, above _load_blas, search and file_options.
        stacklevel=4,
    )


class _Inline:
    """A plugin object that registers one task given to :func:`search`."""

    def __init__(self, spec: TaskSpec) -> None:
        self.__name__ = f"tuner.search({spec.name})"
        self._spec = spec

    @hookimpl
    def tuner_register_tasks(self, register: Callable[[TaskSpec], None]) -> None:
        register(self._spec)


@contextmanager
def _stopped_by_ctrl_c(stop: threading.Event) -> Iterator[None]:
    # Only the main thread may handle signals; elsewhere Ctrl-C keeps its usual meaning.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
