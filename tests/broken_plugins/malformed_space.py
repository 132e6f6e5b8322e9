from tuner import ScheduleSpec, hookimpl


def flat(lr, steps, level):
    return lambda step: lr * level


@hookimpl
def tuner_register_schedules(register):
    register(ScheduleSpec("malformed", flat, {"level": (0.1, 1.0)}))
