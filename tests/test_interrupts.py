"""Ctrl-C during a search: the trial in flight is recorded as interrupted, the user is told how
to continue, the exit status is 130, and no trial is ever left RUNNING."""

import os
import random
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from helpers import TUNER, without_jobs

from tuner.api.workers import cores
from tuner.cli.progress import CtrlC, Display
from tuner.plan import SearchConfig, plan_search
from tuner.plugins import load_plugins
from tuner.query import open_results
from tuner.study import run_search
from tuner.watcher import Watcher

# Trials of about a second, so that most presses land while one trains.
SLOW = ["--task", "synthetic", "--steps", "1500", "--eval-every", "500"]
SLOW += ["--optimizers", "adam,sgd", "--schedules", "constant,cosine"]


def states(url, study):
    return [t.state.name for t in optuna.load_study(study_name=study, storage=url).trials]


def running(url, study):
    return [number for number, state in enumerate(states(url, study)) if state == "RUNNING"]


def start(url, *args, study="s"):
    """`tuner search` in its own process group, as a terminal runs it: Ctrl-C reaches the
    whole group, the compiler MLX runs included."""
    return subprocess.Popen(
        [TUNER, "search", "--storage", url, *SLOW, "--study", study, "--verbose", *args],
        # On PATH, so that the commands it prints begin with tuner, not the path to it; with
        # the workers of --jobs auto, which the signal must stop too.
        env={**without_jobs(), "PATH": f"{TUNER.parent}{os.pathsep}{os.environ['PATH']}"},
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


def test_ctrl_c_records_every_member_of_the_population_in_flight_and_retries_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    # Unpruned and long, so that no member has ended before the signal lands: a population of
    # four trains 1,500 steps of synthetic in about a second.
    process = start(url, "--trials", "40", "--population", "4", "--no-defaults", "--confirm", "0",
                    "--pruner", "none", "--steps", "4000")  # fmt: skip
    wait_for(process, "trial 3 ")
    # The next population is asked for and training: four trials running at once in each
    # worker (--jobs auto runs one a core).
    deadline = time.monotonic() + 60
    while len(running(url, "s")) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    in_flight = running(url, "s")
    assert len(in_flight) >= 4

    press_ctrl_c(process)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert ", and recorded as interrupted." in err
    assert "Traceback" not in err
    assert running(url, "s") == []
    with open_results(url) as results:
        stopped = results.trials("s", state="interrupted")
        everyone = results.trials("s")
    # Those populations, or the next if one ended before the signal came: every member that had
    # not ended (one that diverged ends early) is interrupted.
    numbers = sorted(t.number for t in stopped)
    assert numbers and numbers[0] >= in_flight[0]
    populations = {t.population for t in stopped}
    for population in populations:
        members = [t for t in everyone if t.population == population]
        assert len(members) == 4
        assert {t.outcome for t in members} <= {"interrupted", "diverged", "complete", "pruned"}
    assert {t.reason for t in stopped} <= {f"interrupted at step {n}" for n in range(4000)} | {
        "interrupted before its first step"
    }
    # The line that says what was cut short names every trial cut short, in every worker.
    (said,) = [line for line in err.splitlines() if line.startswith("Interrupted: ")]
    head = said.removeprefix("Interrupted: ").split(" interrupted")[0].split(" stopped")[0]
    named = set()
    for part in re.findall(r"\d+(?:-\d+)?", head):
        first, _, last = part.partition("-")
        named |= set(range(int(first), int(last or first) + 1))
    assert named == set(numbers), said
    queued = [
        t
        for t in optuna.load_study(study_name="s", storage=url).trials
        if t.state.name == "WAITING"
    ]
    # Queued again, to be tried when the study goes on.
    lrs = sorted(t.system_attrs["fixed_params"]["lr"] for t in queued)
    assert lrs == sorted(t.params["lr"] for t in stopped)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_a_search_as_ctrl_c_does(tmp_path, signum, status):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    process = start(url, "--trials", "50")
    wait_for(process, "trial 1 ")

    process.send_signal(signum)
    out, err = process.communicate(timeout=60)

    assert process.returncode == status, err
    # One trial cut short, or more: the worker of --jobs auto may have had its own in flight.
    assert f"Stopped by {signal.Signals(signum).name}: trial" in err
    assert "Traceback" not in err
    assert out.splitlines()[0].startswith("Top ")
    assert running(url, "s") == []
    with open_results(url) as results:
        # The trial in flight in each worker (--jobs auto).
        assert 1 <= len(results.trials("s", state="interrupted")) <= cores()


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
    display = Display(lambda study: "", "x.db", 1, None, live=False, verbose=False)
    ctrl_c = CtrlC(display)
    # Python's own handler, or SIG_IGN where a shell started the tests in the background.
    before = signal.getsignal(signal.SIGINT)
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
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_signals_at_sixteen_random_moments_leave_nothing_running_and_nothing_disagreeing(
    tmp_path, signum, status
):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    # From the moment the study is ready to deep inside its trials, one moment in each
    # sixteenth of 2.5 s, so that they land in every phase: sampling, training, kernel builds,
    # storing, the leaderboard. Two searches at a time, each on a study of its own in one
    # file, each continued by the next.
    draw = random.Random(int(signum))
    moments = [draw.randrange(250 * i // 16, 250 * (i + 1) // 16) for i in range(16)]

    def attempt(index, study):
        process = start(url, "--trials", "500", study=study)
        wait_for(process, f"Study {study} (")
        time.sleep(moments[index] / 100)

        if signum == signal.SIGINT:
            press_ctrl_c(process)
        else:
            process.send_signal(signum)
        out, err = process.communicate(timeout=60)

        assert process.returncode == status, err
        assert "Traceback" not in err and "Exception ignored" not in err, err
        told = f"tuner search --study {study} " in out + err
        assert told, (out, err)
        assert running(url, study) == [], (out, err)

    def attempts(study, indices):
        for index in indices:
            attempt(index, study)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(attempts, ["s0", "s1"], [range(0, 16, 2), range(1, 16, 2)]))
    interrupted = 0
    with open_results(url) as results:
        for study in ("s0", "s1"):
            read = [t.state for t in results.trials(study)]
            assert read == [state for state in states(url, study) if state != "WAITING"]
            counts = results.study(study).counts
            assert counts.running == 0
            interrupted += counts.interrupted
    assert interrupted >= 5


class StopAtTrial(Watcher):
    """Sets ``stop`` as trial ``number`` starts, as a Ctrl-C there would."""

    def __init__(self, stop, number):
        self.stop = stop
        self.number = number

    def trial_started(self, number, sample, steps, members=1):
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
