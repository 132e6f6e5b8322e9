"""A reader that stops early, as `tuner plugins | head -1` does, ends tuner quietly."""

import subprocess

import pytest
from helpers import TUNER

SIGPIPE_STATUS = 141


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "--format", "json"], ["--help"]])
def test_a_closed_stdout_ends_tuner_silently(args):
    process = subprocess.Popen([TUNER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # tuner takes a moment to import, so every write it makes comes after this.
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait()

    assert stderr == b""
    assert process.returncode == SIGPIPE_STATUS
