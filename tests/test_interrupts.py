"""Ctrl-C during a search: the trial in flight is recorded as interrupted, the user is told how
to continue, the exit status is 130, and no trial is ever left RUNNING."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from tuner.cli.progress import CtrlC, Display
from tuner.plan import SearchConfig, plan_search
from tuner.plugins import load_plugins
from tuner.query import open_results
from tuner.study import run_search
from tuner.watcher import Watcher

TUNER = Path(sys.executable).with_name("tuner")
# Trials of about a second, so that most presses land while one trains.
SLOW = ["--task", "synthetic", "--steps", "1500", "--eval-every", "500"]
SLOW += ["--optimizers", "adam,sgd", "--schedules", "constant,cosine"]


def states(url, study):
    return [t.state.name for t in optuna.load_study(study_name=study, storage=url).trials]


def running(url, study):
    return [number for number, state in enumerate(states(url, study)) if state == "RUNNING"]


def start(url, *args):
    """`tuner search` in its own process group, as a terminal runs it: Ctrl-C reaches the
    whole group, the compiler MLX runs included."""
    return subprocess.Popen(
        [TUNER, "search", "--storage", url, *SLOW, "--study", "s", "--verbose", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(process, text, seconds=60):
    """Read stderr until a line holds ``text``; the lines read so far."""
    lines = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} in {lines}")


def press_ctrl_c(process):
    os.killpg(process.pid, signal.SIGINT)


def test_ctrl_c_records_the_trial_in_flight_and_says_how_to_continue(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    process = start(url, "--trials", "50")
    wait_for(process, "trial 1 ")

    press_ctrl_c(process)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "Interrupted: trial " in err
    assert ", and recorded as interrupted." in err
    assert out.splitlines()[0].startswith("Top ")
    assert "Study s in sqlite:///" in out
    assert out.splitlines()[-1].startswith("Continue it: tuner search --study s --trials 50 ")
    assert "Traceback" not in err and "Aborted" not in err
    assert running(url, "s") == []
    with open_results(url) as results:
        stopped = results.trials("s", state="interrupted")
    assert len(stopped) == 1
    assert stopped[0].state == "FAIL"
    assert stopped[0].reason.startswith("interrupted")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_a_search_as_ctrl_c_does(tmp_path, signum, status):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    process = start(url, "--trials", "50")
    wait_for(process, "trial 1 ")

    process.send_signal(signum)
    out, err = process.communicate(timeout=60)

    assert process.returncode == status, err
    assert f"Stopped by {signal.Signals(signum).name}: trial " in err
    assert "Traceback" not in err
    assert out.splitlines()[0].startswith("Top ")
    assert running(url, "s") == []
    with open_results(url) as results:
        assert len(results.trials("s", state="interrupted")) == 1


def test_a_second_ctrl_c_skips_the_leaderboard_and_is_never_swallowed(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    # One graph, built in trial 0: from trial 1 on, every step returns to Python at once.
    process = start(url, "--trials", "50", "--optimizers", "adam", "--schedules", "constant")
    wait_for(process, "trial 1 ")

    press_ctrl_c(process)
    time.sleep(0.02)
    press_ctrl_c(process)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert out == ""
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.splitlines()[-1].startswith(
        "Interrupted. Study s; continue it: tuner search --study s --trials 50 "
    )
    assert running(url, "s") == []


def test_inside_a_search_a_press_stops_it_and_a_second_hurries_it():
    display = Display(lambda study, trials: "", "x.db", 1, None, live=False, verbose=False)
    ctrl_c = CtrlC(display)
    with ctrl_c:
        with ctrl_c.guarding():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            assert ctrl_c.stop.is_set() and not ctrl_c.hurry
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            assert ctrl_c.hurry
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_twenty_interrupts_at_any_moment_leave_no_trial_running(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    # From the moment the study is ready to deep inside its trials, in steps that land in
    # every phase: sampling, training, kernel builds, storing, the leaderboard.
    for attempt in range(20):
        process = start(url, "--trials", "500")
        wait_for(process, "Study s (")
        time.sleep(attempt * 0.1)

        press_ctrl_c(process)
        out, err = process.communicate(timeout=60)

        assert process.returncode == 130, err
        assert "Traceback" not in err and "Exception ignored" not in err, err
        told = "Continue it: tuner search --study s " in out
        assert told or "continue it: tuner search --study s " in err, (out, err)
        assert running(url, "s") == [], (out, err)
    with open_results(url) as results:
        counts = results.study("s").counts
    assert counts.running == 0
    assert counts.interrupted >= 10, counts


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_at_any_moment_leave_tuner_and_optuna_agreeing(tmp_path, signum, status):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    for attempt in range(10):
        process = start(url, "--trials", "500")
        wait_for(process, "Study s (")
        time.sleep(attempt * 0.15)

        process.send_signal(signum)
        out, err = process.communicate(timeout=60)

        assert process.returncode == status, err
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert running(url, "s") == [], (out, err)
    with open_results(url) as results:
        read = [t.state for t in results.trials("s")]
    assert read == [state for state in states(url, "s") if state != "WAITING"]


class StopAtTrial(Watcher):
    """Sets ``stop`` as trial ``number`` starts, as a Ctrl-C there would."""

    def __init__(self, stop, number):
        self.stop = stop
        self.number = number

    def trial_started(self, number, sample, steps):
        if number == self.number:
            self.stop.set()


def test_a_stopped_search_records_the_trial_as_interrupted_and_counts_it_apart(sqlite_url):
    config = SearchConfig(task="synthetic", trials=10, study="stopped", optimizers=["adam"])
    plan = plan_search(config, load_plugins())
    stop = threading.Event()

    name = run_search(plan, sqlite_url, StopAtTrial(stop, 2), stop)

    # The interrupted trial's settings wait to run again when the study goes on.
    assert states(sqlite_url, name) == ["COMPLETE", "COMPLETE", "FAIL", "WAITING"]
    trials = optuna.load_study(study_name=name, storage=sqlite_url).trials
    assert trials[3].system_attrs["fixed_params"] == trials[2].params
    with open_results(sqlite_url) as results:
        record = results.trial("stopped", 2)
        counts = results.study("stopped").counts
    assert (record.outcome, record.steps, record.reason) == (
        "interrupted",
        0,
        "interrupted at step 0",
    )
    assert (counts.complete, counts.failed, counts.interrupted, counts.finished) == (2, 0, 1, 2)


def test_a_study_goes_on_after_an_interrupt(sqlite_url):
    config = SearchConfig(task="synthetic", trials=3, study="again", optimizers=["adam"])
    plan = plan_search(config, load_plugins())
    stop = threading.Event()
    run_search(plan, sqlite_url, StopAtTrial(stop, 1), stop)

    name = run_search(plan, sqlite_url)

    assert states(sqlite_url, name) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
