"""What the tests share: the installed command, and the options of a search short enough
for a test."""

import sys
from pathlib import Path

# The installed console script, beside this Python: a test that needs a process of its own
# (a signal, a pipe, a terminal, a time limit) runs it as a user would.
TUNER = Path(sys.executable).with_name("tuner")

# Two optimizers and two schedules on the synthetic task: a real search, in seconds. A tuple,
# so that no test can change what another searches.
FAST = ("--task", "synthetic", "--optimizers", "adam,sgd", "--schedules", "constant,cosine")
