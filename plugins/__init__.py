"""tuner's built-in optimizers, schedules and tasks, installed as ``tuner_builtins``.

They are ordinary plugins: each module holds ``@hookimpl`` functions, registered through the
same door as a third-party plugin's.
"""
