from tuner import Float, ScheduleSpec, hookimpl


def halving(lr, steps, floor):
    return lambda step: lr * (floor + (1 - floor) * 0.5 ** (step / steps))


@hookimpl
def tuner_register_schedules(register):
    register(ScheduleSpec("halving", halving, {"floor": Float(0.0, 0.5)}, "halves over the run"))
