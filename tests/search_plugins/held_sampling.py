"""No plugin of its own: it holds its worker's first sampling of a trial's settings until the
test lets it go, so that the test can look at the study and the claim lock meanwhile.
``TUNER_TEST_SAMPLING`` names the file written as that sampling begins; it goes on once the
same name with ``.go`` added exists."""

import os
import time
from pathlib import Path

from tuner.space import SearchSpace

MARK = Path(os.environ["TUNER_TEST_SAMPLING"])
GO = MARK.with_name(f"{MARK.name}.go")
# A test that never lets it go must not leave a worker behind for ever.
WAIT_S = 120
_sample = SearchSpace.sample


def sample(self, trial):
    if not MARK.exists():
        MARK.write_text(str(trial.number))
        deadline = time.monotonic() + WAIT_S
        while not GO.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return _sample(self, trial)


SearchSpace.sample = sample
