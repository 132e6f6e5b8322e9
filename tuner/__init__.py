"""tuner: find the best optimizer and learning-rate schedule for an MLX model.

The plugin API lives here: ``hookimpl``, the specs a plugin registers, and the parameter types
of a search space.
"""

from tuner.hookspecs import hookimpl
from tuner.space import Choice, Float, Int
from tuner.specs import Metric, OptimizerSpec, ScheduleSpec, Task, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "Choice",
    "Float",
    "Int",
    "Metric",
    "OptimizerSpec",
    "ScheduleSpec",
    "Task",
    "TaskSpec",
    "hookimpl",
]
