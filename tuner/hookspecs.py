"""The hooks a tuner plugin implements. Their docstrings are the plugin author's manual.

A plugin is a module (or any object) with functions decorated ``@tuner.hookimpl`` and named
after the hooks below. Each hook receives ``register``; call it once per thing you add::

    import mlx.optimizers as optim
    from tuner import Float, OptimizerSpec, hookimpl

    @hookimpl
    def tuner_register_optimizers(register):
        register(OptimizerSpec(
            "mysgd",
            build=lambda learning_rate, momentum: optim.SGD(learning_rate, momentum=momentum),
            space={"momentum": Float(0.0, 0.99)},
            description="SGD with momentum",
        ))

Make it known to tuner in one of three ways:

- an entry point in the ``tuner`` group of your package's ``pyproject.toml``::

      [project.entry-points.tuner]
      mysgd = "mysgd_plugin"

- ``--plugin path/to/file.py`` or ``--plugin some.module`` on any command;
- ``TUNER_PLUGINS=path/to/file.py,some.module`` in the environment.

``TUNER_LOAD_PLUGINS=a,b`` loads only the installed and given plugins named ``a`` and ``b``;
the built-ins always load. Names must be unique across all plugins: a name that is taken is
refused with an error that names your plugin, and the others go on working.
"""

import pluggy

hookspec = pluggy.HookspecMarker("tuner")
hookimpl = pluggy.HookimplMarker("tuner")


@hookspec
def tuner_register_optimizers(register):
    """Register optimizers: call ``register(OptimizerSpec(name, build, space, description))``.

    ``space`` maps each keyword argument of ``build`` to a ``Float``, ``Int`` or ``Choice``
    with the range worth searching. The peak learning rate is not part of it: every optimizer
    shares the ``lr`` dimension. Users may move a range with ``--space``; where some values
    mean nothing at all (a fraction past 1), say so with ``Float(low, high,
    limits=(lowest, highest))``, and those are refused in one line; a limit may be
    ``math.inf``, or ``Open(x)`` for one that values may not reach, and a ``Choice`` of
    numbers takes ``limits`` too. Before a search writes
    anything, ``build`` is called with the middle of each range and with each value of each
    ``Choice``: raise ``ValueError`` there, with what the values may be, for one it cannot
    take.

    ``build(learning_rate, **params)`` returns an ``mlx.optimizers.Optimizer``.
    ``learning_rate`` is a schedule callable (or a float). During a search ``build`` is called
    while ``mx.compile`` traces the training step, so that one compiled step serves every trial:
    each ``Float`` parameter then arrives as a scalar ``mx.array``, while ``Int`` and ``Choice``
    parameters arrive as Python values and select another compiled graph. So compute with
    ``Float`` parameters using arithmetic or ``mx`` functions; never branch on them in Python
    (``if momentum > 0`` cannot be traced). ``build`` is also called once per trial outside
    the trace, with the same parameters as concrete arrays, to create the optimizer's initial
    state: keep it cheap and free of side effects.

    ``code``, optional, lets ``tuner export`` print a trial of your optimizer as plain MLX code
    that needs no tuner. ``code(learning_rate, **params)`` returns one Python expression that
    builds the same optimizer as ``build``, using only ``optim`` (``mlx.optimizers``) and
    ``mx`` (``mlx.core``). Every argument is a value whose ``repr`` is its Python source in the
    printed code, so write each one with ``!r``::

        code=lambda learning_rate, momentum: (
            f"optim.SGD(learning_rate={learning_rate!r}, momentum={momentum!r})"
        )

    ``learning_rate`` stands for the schedule, and each ``Float`` parameter for a float32
    ``mx.array`` such as ``mx.array(0.9)``: the trial computed with those, and Python floats
    would round differently (``1 - beta`` of a float is computed in float64, then rounded to
    float32), so compute nothing with them. ``Int`` and ``Choice`` parameters are their plain
    values. The code must do exactly what ``build`` does, or the export is not the optimizer
    the trial ran. Without ``code``, the export calls ``tuner.build_optimizer``, which needs
    your plugin where the code runs.

    ``eval_weights``, optional, is for an optimizer whose model is to be evaluated at other
    weights than those it trains at, as schedule-free methods are at an average of their
    iterates. ``eval_weights(state, parameters)`` receives the optimizer's state (its
    ``Optimizer.state`` dict, holding whatever its ``init_single`` and updates put there) and
    the model's trainable parameters (the weights it trains at), and returns a tree of the
    weights to evaluate and save the model with, which ``model.update`` takes. Keep them in the
    state, updated by ``apply_single``, so that this only picks them out::

        eval_weights=lambda state, parameters: mlx.utils.tree_map(
            lambda _, own: own["x"], parameters, state
        )

    tuner then measures every eval of a trial (and a confirmation run's test set) at those
    weights, and puts the training weights back before the next step. ``tuner export`` says so
    and writes the call that gives them after training, ``tuner.eval_weights(config,
    optimizer, parameters)``, which needs your plugin; an optimizer without ``eval_weights`` is
    evaluated at the weights it trains, and ``tuner.eval_weights`` returns those.
    """


@hookspec
def tuner_register_schedules(register):
    """Register learning-rate schedules: call ``register(ScheduleSpec(name, build, space))``.

    ``build(lr, steps, **params)`` returns a callable from the step (an ``mx.array``) to the
    learning rate. ``lr`` is the peak rate, ``steps`` the number of steps the schedule runs
    over; after them it holds its last value. As with optimizers, ``lr`` and ``Float``
    parameters may arrive as scalar ``mx.array`` values: compute with them, don't branch on
    them. ``steps`` and ``Int`` parameters are Python ints. The callable must return an
    ``mx.array``, which optimizers expect of a learning rate.

    Warmup is not a schedule's business: tuner puts a linear warmup from 0 in front of any
    schedule with ``mlx.optimizers.join_schedules``, and the schedule then runs over the steps
    that remain, its step counter restarting at 0.

    ``code(lr, steps, **params)``, optional, returns the Python expression of the same schedule
    for ``tuner export``, under the rules of an optimizer's ``code``: ``lr`` stands for the peak,
    a float32 ``mx.array``; ``steps`` is an int; and the expression's value is a callable from
    the step, such as ``optim.cosine_decay(...)`` or ``lambda step: ...``::

        code=lambda lr, steps, end_factor: (
            f"optim.cosine_decay({lr!r}, {steps!r}, end={end_factor!r} * {lr!r})"
        )

    ``end_factor * lr`` stays a product of arrays, as ``build`` computes it: a product of
    Python floats would be rounded in float64, not in float32 as the trial rounded it.
    """


@hookspec
def tuner_register_tasks(register):
    """Register training tasks: call ``register(TaskSpec(name, build, description, space))``.

    ``space``, optional, declares the task's own parameters (``Float``, ``Int``, ``Choice``,
    as an optimizer's), searched only once ``--space TASK.PARAM=VALUES`` names one; each value
    searched is a graph of its own, so declare a ``Choice`` where you can.

    ``build()`` returns a ``tuner.Task`` and is called once per process, so load data there:
    - ``model``: a function returning a new ``mlx.nn.Module``, called with a keyword argument
      for each parameter of ``space`` that the study searches, so give each a default; tuner
      seeds MLX and numpy before it calls it, so its initial weights depend on the trial's seed
      only;
    - ``train`` and ``valid``: ``(x, y)`` pairs of ``mx.array``, split on the first axis;
    - ``loss(model, x, y)``: the mean loss of a batch as a scalar ``mx.array``;
    - ``metrics``: optional ``{name: Metric(fn, direction)}``, where ``fn(model, x, y)``
      returns a scalar ``mx.array`` on validation data (``direction`` is ``"maximize"`` or
      ``"minimize"``); ``tuner search --metric NAME`` optimises one of them instead of the
      validation loss;
    - ``steps``, ``batch_size``, ``eval_every``: the defaults of a trial on this task;
    - ``test``: optional, a function of no arguments returning a held-out ``(x, y)`` that no
      trial sees: neither the objective nor the pruner reads it. Only a confirmation run calls
      it, once its training is over, and reports the loss and metrics on it as ``test_loss``
      and ``test_NAME``. Being a function, it may load its data when called, not before.
    """
