"""A full disk says so in one line and loses no finished trial: a real small filesystem (a
tmpfs mounted for the test, which needs the right to mount; skipped, saying why, without it)."""

import re
import sqlite3
import subprocess
import time

import optuna
import pytest
from helpers import TUNER


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2000k", "tmpfs", str(folder)],
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
    *before, error = full.stderr.strip().splitlines()
    assert error == (
        f"Error: disk full: no space left for the database {database}; the trials that "
        "finished are kept: make room, then run the same command to continue"
    )
    # The disk may fill as a trial is sampled: that trial's line comes first, and no more.
    assert len(before) <= 1 and all(" failed: " in line for line in before), before
    trials = optuna.load_study(study_name="f", storage=url).trials
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert finished
    listed = subprocess.run(
        [TUNER, "trials", "f", "--storage", url, "--format", "json"], capture_output=True
    )
    assert listed.returncode == 0, listed.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_heartbeat_that_finds_the_disk_full_says_nothing_and_beats_again(small_disk):
    """Optuna beats from a thread of its own, where an error would print a traceback: the
    trial's own next write meets the full disk, and reports it in one line."""
    from tuner.db.optuna import optuna_storage

    storage = optuna_storage(f"sqlite:///{small_disk / 'tuner.db'}")
    study = optuna.create_study(storage=storage, study_name="h")
    trial_id = study.ask()._trial_id
    filler = small_disk / "filler"
    with filler.open("wb") as out, pytest.raises(OSError, match="No space left"):
        while True:
            out.write(b"\0" * 65536)
            out.flush()

    storage.record_heartbeat(trial_id)

    optunas_own = optuna.storages.RDBStorage.record_heartbeat
    with pytest.raises(optuna.exceptions.StorageInternalError) as raised:
        optunas_own(storage, trial_id)
    assert "disk is full" in str(raised.value.__cause__)
    filler.unlink()
    optunas_own(storage, trial_id)
    storage.engine.dispose()


def test_after_making_room_the_same_command_fails_the_trial_left_running_at_once(small_disk):
    database = small_disk / "tuner.db"
    url = f"sqlite:///{database}"
    command = [TUNER, "search", "--task", "synthetic", "--trials", "5000", "--study", "f"]
    command += ["--confirm", "0", "--quiet", "--storage", url]
    full = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    _, stderr = full.communicate(timeout=300)
    assert full.returncode == 1, stderr
    study = optuna.load_study(study_name="f", storage=url)
    # Where the disk fills decides whether a trial is left running; any that is, the same
    # command fails at once once there is room.
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    subprocess.run(["mount", "-o", "remount,size=8000k", str(small_disk)], check=True)

    started = time.monotonic()
    again = subprocess.run(
        [*command[:5], str(finished + 2), *command[6:]], capture_output=True, text=True
    )

    assert again.returncode == 0, again.stderr
    # Not after the heartbeat's grace of 90 s: its worker is known to have ended.
    assert time.monotonic() - started < 30
    for number in running:
        # The search's, or one of its workers' (--jobs auto).
        assert re.search(rf"trial {number} failed: its worker, process \d+ on this", again.stderr)
    states = [t.state.name for t in optuna.load_study(study_name="f", storage=url).trials]
    assert "RUNNING" not in states
