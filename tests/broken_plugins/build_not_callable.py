from tuner import ScheduleSpec, hookimpl


@hookimpl
def tuner_register_schedules(register):
    register(ScheduleSpec("uncallable", "flat", {}))
