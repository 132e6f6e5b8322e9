import sys

from tuner import hookimpl


@hookimpl
def tuner_register_schedules(register):
    sys.exit("no schedules today")
