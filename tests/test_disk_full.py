"""A full disk says so in one line and loses no finished trial: a real small filesystem (a
tmpfs mounted for the test, which needs the right to mount; skipped, saying why, without it)."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

TUNER = Path(sys.executable).with_name("tuner")


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a full disk needs a small mount, and mounting failed: {mounted.stderr}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


def test_a_full_disk_says_so_and_keeps_the_finished_trials(small_disk):
    database = small_disk / "tuner.db"
    url = f"sqlite:///{database}"

    command = [TUNER, "search", "--task", "synthetic", "--trials", "5000", "--study", "f"]
    full = subprocess.run(
        [*command, "--confirm", "0", "--quiet", "--storage", url],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert full.returncode == 1
    assert full.stderr.strip().splitlines() == [
        f"Error: disk full: no space left for the database {database}; the trials that "
        "finished are kept: make room, then run the same command to continue"
    ]
    trials = optuna.load_study(study_name="f", storage=url).trials
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert finished
    listed = subprocess.run(
        [TUNER, "trials", "f", "--storage", url, "--format", "json"], capture_output=True
    )
    assert listed.returncode == 0, listed.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
