"""`tuner worker`: a process that joins a study with the settings it was made with."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from helpers import TUNER, tuner, without_jobs
from stored import stored_confirmations, stored_trials

from tuner import open_results
from tuner.api.workers import cores
from tuner.db import parse_url
from tuner.db.workers import WORKER_ATTR

PLUGIN = Path(__file__).parent / "search_plugins" / "halving_default.py"
SEARCH = ["search", "--task", "synthetic", "--optimizers", "adam,sgd", "--schedules", "constant"]
SEARCH += ["--study", "w", "--confirm", "0"]


def test_a_worker_runs_the_study_with_the_settings_it_was_made_with(sqlite_url):
    assert tuner(*SEARCH, "--trials", "3", "--storage", sqlite_url).exit_code == 0

    result = tuner("worker", "w", "--trials", "7", "--storage", sqlite_url)

    assert result.exit_code == 0, result.output
    trials = stored_trials(sqlite_url, "w")
    assert len(trials) == 7
    assert {(t.optimizer, t.schedule) for t in trials} <= {
        ("adam", "constant"),
        ("sgd", "constant"),
    }
    assert {t.steps for t in trials if t.outcome == "complete"} == {100}
    assert result.stdout.splitlines()[-1].startswith("Continue it: tuner worker w --trials 14 ")


def test_workers_and_a_search_share_a_study_to_its_target(storage_url):
    if storage_url.startswith("postgresql"):
        subprocess.run([TUNER, "db", "upgrade", "--storage", storage_url], check=True)
    assert tuner(*SEARCH, "--trials", "2", "--storage", storage_url).exit_code == 0
    worker = [TUNER, "worker", "w", "--trials", "12", "--storage", storage_url, "--quiet"]

    workers = [
        subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]

    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = optuna.load_study(study_name="w", storage=storage_url).trials
    finished = [t for t in trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 12
    assert not [t for t in trials if t.state.name == "RUNNING"]
    assert sorted(r.number for r in stored_trials(storage_url, "w")) == [t.number for t in trials]


def test_a_worker_needs_the_plugins_the_study_searches(sqlite_url):
    made = tuner(
        "search", "--task", "synthetic", "--optimizers", "plainsgd", "--plugin", PLUGIN,
        "--study", "p", "--trials", "2", "--confirm", "0", "--storage", sqlite_url,
    )  # fmt: skip
    assert made.exit_code == 0, made.output

    without = tuner("worker", "p", "--trials", "3", "--storage", sqlite_url)
    with_it = tuner("worker", "p", "--trials", "3", "--storage", sqlite_url, "--plugin", PLUGIN)

    assert without.exit_code == 2
    assert without.stderr.strip().splitlines() == [
        "Error: study 'p' searches optimizer 'plainsgd', which no loaded plugin registers now: "
        "install its plugin again or pass it with --plugin"
    ]
    assert with_it.exit_code == 0, with_it.output
    assert len(stored_trials(sqlite_url, "p")) == 3


def test_a_worker_of_a_study_that_is_not_there_says_so(sqlite_url):
    assert tuner(*SEARCH, "--trials", "1", "--storage", sqlite_url).exit_code == 0
    result = tuner("worker", "x", "--trials", "3", "--storage", sqlite_url)

    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: no study 'x' in {sqlite_url}; known: w"


def test_a_worker_without_trials_works_to_the_count_of_the_last_search(sqlite_url):
    assert tuner(*SEARCH, "--trials", "2", "--storage", sqlite_url).exit_code == 0
    cut_short = tuner(*SEARCH, "--trials", "5", "--storage", sqlite_url, "--timeout", "0.01")
    assert cut_short.exit_code == 0, cut_short.output
    assert len(stored_trials(sqlite_url, "w")) < 5
    assert tuner("worker", "w", "--trials", "3", "--storage", sqlite_url).exit_code == 0

    result = tuner("worker", "w", "--storage", sqlite_url)

    assert result.exit_code == 0, result.output
    assert len(stored_trials(sqlite_url, "w")) == 5


def test_jobs_run_workers_beside_the_search_and_stop_them_at_its_count(storage_url):
    if storage_url.startswith("postgresql"):
        subprocess.run([TUNER, "db", "upgrade", "--storage", storage_url], check=True)
    command = [TUNER, "search", "--task", "synthetic", "--study", "j", "--trials", "12"]
    command += ["--jobs", "2", "--confirm", "2x2", "--storage", storage_url]

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    trials = optuna.load_study(study_name="j", storage=storage_url).trials
    states = [t.state.name for t in trials]
    assert len(states) - states.count("FAIL") == 12
    assert "RUNNING" not in states
    assert sorted(r.number for r in stored_trials(storage_url, "j")) == [t.number for t in trials]
    assert len(stored_confirmations(storage_url, "j")) == 4
    assert "--jobs 2" in done.stdout.splitlines()[-1]


def trials_so_far(url, study):
    """The study's records, none while the search has not made its database or tables."""
    try:
        return stored_trials(url, study)
    except sqlalchemy.exc.OperationalError:
        return []


def test_ctrl_c_stops_every_worker_of_jobs(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    command = [TUNER, "search", "--task", "synthetic", "--study", "j", "--trials", "500"]
    command += ["--jobs", "2", "--steps", "1500", "--eval-every", "500", "--storage", url]
    search = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(trials_so_far(url, "j") if (tmp_path / "tuner.db").exists() else []) < 3:
        assert time.monotonic() < deadline and search.poll() is None
        time.sleep(0.2)

    os.killpg(search.pid, signal.SIGINT)
    _, err = search.communicate(timeout=60)

    assert search.returncode == 130, err
    assert "Traceback" not in err
    trials = optuna.load_study(study_name="j", storage=url).trials
    assert "RUNNING" not in [t.state.name for t in trials]
    assert subprocess.run(["pgrep", "-f", "tuner worker j"], capture_output=True).stdout == b""


@pytest.fixture(params=["sqlite", "postgres"])
def alone_url(request):
    """Each backend in turn, PostgreSQL in a database of this test's own, whose connections
    are its alone to count while other tests run."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    url, _ = request.getfixturevalue("own_database")
    return url


def test_four_jobs_fill_a_study_of_40_while_a_reader_reads_it(alone_url):
    storage_url = alone_url
    if storage_url.startswith("postgresql"):
        subprocess.run([TUNER, "db", "upgrade", "--storage", storage_url], check=True)
    # Ten trials a job: each job claims trials while the others store theirs.
    command = [TUNER, "search", "--task", "synthetic", "--study", "big", "--trials", "40"]
    command += ["--jobs", "4", "--oversubscribe", "--confirm", "0", "--quiet"]
    command += ["--storage", storage_url]
    reader = [TUNER, "trials", "big", "--storage", storage_url, "--format", "json"]

    search = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reads = []
    while search.poll() is None:
        reads.append(subprocess.run(reader, capture_output=True, text=True))
        time.sleep(0.5)
    _, err = search.communicate()

    assert search.returncode == 0, err
    assert err == ""
    # A database or study that does not exist yet is the only error a reader may meet.
    starting = ("no study 'big'", "no database at")
    errors = [r.stderr.removeprefix("Error: ") for r in reads if r.returncode]
    assert [e for e in errors if not e.startswith(starting)] == []
    trials = optuna.load_study(study_name="big", storage=storage_url).trials
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "FAIL" not in states
    assert len(states) == 40
    assert [t.number for t in trials] == list(range(len(trials)))
    with open_results(storage_url) as results:
        assert [t.state for t in results.trials("big")] == states
    if storage_url.startswith("postgresql"):
        assert tuner_connections(storage_url) == 0


def tuner_connections(url):
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(
            sqlalchemy.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'tuner' AND datname = current_database()"
            )
        )
    engine.dispose()
    return count


def test_jobs_beyond_the_cores_are_refused_in_one_line(tmp_path):
    db = tmp_path / "tuner.db"
    jobs = str(cores() + 1)
    command = [TUNER, "search", "--task", "synthetic", "--trials", "2", "--steps", "5"]
    command += ["--confirm", "0", "--jobs", jobs, "--storage", f"sqlite:///{db}"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"Error: --jobs {jobs} is more than the {cores()} cores here: the workers would "
        "wait on each other and could make the machine unresponsive; give --oversubscribe to "
        "start them anyway\n"
    )
    assert not db.exists()


@pytest.mark.parametrize("jobs", ["x", "-1", "2.5"])
def test_a_jobs_that_is_no_count_is_refused_in_one_line(tmp_path, jobs):
    db = tmp_path / "tuner.db"
    command = [TUNER, "search", "--task", "synthetic", "--trials", "2", "--steps", "5"]
    command += ["--confirm", "0", f"--jobs={jobs}", "--storage", f"sqlite:///{db}"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '--jobs': '{jobs}': give auto or a number of processes, such "
        "as 2"
    )
    assert not db.exists()


def test_a_tuner_jobs_that_is_no_count_is_refused_naming_it(tmp_path):
    db = tmp_path / "tuner.db"
    command = [
        TUNER,
        "search",
        "--task",
        "synthetic",
        "--trials",
        "2",
        "--storage",
        f"sqlite:///{db}",
    ]
    env = {**os.environ, "TUNER_JOBS": "many"}

    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--jobs': 'many' (from TUNER_JOBS): give auto or a number of "
        "processes, such as 2"
    )
    assert not db.exists()


def verbose_search(url, *more, env=None):
    command = [TUNER, "search", "--task", "synthetic", "--study", "d", "--storage", url]
    command += ["--confirm", "0", "--verbose", *more]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(cores() < 2, reason="one core: --jobs auto is one process")
def test_a_default_search_runs_a_worker_a_core_and_shows_every_trial_once(sqlite_url):
    env = without_jobs()

    done = verbose_search(sqlite_url, "--trials", "40", "--population", "1", env=env)

    assert done.returncode == 0, done.stderr
    assert f"Workers: {cores()} processes on this machine (--jobs 1 for one)" in done.stderr
    lines = [line.split() for line in done.stderr.splitlines() if line.startswith("trial ")]
    shown = sorted(int(words[1]) for words in lines)
    trials = optuna.load_study(study_name="d", storage=sqlite_url).trials
    # Every trial, whichever worker ran it, once; and not all by the search itself.
    assert shown == [t.number for t in trials if t.state.name != "WAITING"]
    assert len({t.system_attrs[WORKER_ATTR] for t in trials}) == cores()
    assert len(shown) - sum(t.state.name == "FAIL" for t in trials) == 40


@pytest.mark.parametrize("case", ["one trial left", "TUNER_JOBS=1", "--jobs 1"])
def test_one_process_where_auto_would_start_workers_for_nothing_or_one_is_asked(sqlite_url, case):
    env = without_jobs()
    more = ["--trials", "1"] if case == "one trial left" else ["--trials", "6"]
    if case == "TUNER_JOBS=1":
        env["TUNER_JOBS"] = "1"
    if case == "--jobs 1":
        more += ["--jobs", "1"]

    done = verbose_search(sqlite_url, *more, env=env)

    assert done.returncode == 0, done.stderr
    assert "Workers:" not in done.stderr
    trials = optuna.load_study(study_name="d", storage=sqlite_url).trials
    assert len({t.system_attrs[WORKER_ATTR] for t in trials}) == 1


WORKERLESS = """
import sys

if sys.argv[1:2] == ["worker"]:
    raise RuntimeError("this plugin refuses to load in a worker")
"""


@pytest.mark.skipif(cores() < 2, reason="one core: --jobs auto is one process")
def test_a_worker_of_jobs_that_fails_alone_is_said_once_by_the_search(sqlite_url, tmp_path):
    plugin = tmp_path / "workerless.py"
    plugin.write_text(WORKERLESS)
    env = without_jobs()

    done = verbose_search(sqlite_url, "--trials", "12", "--plugin", plugin, env=env)

    assert done.returncode == 0, done.stderr
    failed = [line for line in done.stderr.splitlines() if "this plugin refuses" in line]
    assert len(failed) == 1
    assert re.fullmatch(
        r"A worker of --jobs \(process \d+\) failed with exit status 2: .*this plugin refuses "
        r"to load in a worker.*",
        failed[0],
    )
    assert len(stored_trials(sqlite_url, "d")) == 12


def workers_of(pid):
    """The ``tuner worker`` processes whose parent is ``pid``, by process id."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"\nPPid:\t{pid}\n" in status and b"worker" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def long_jobs(url, *more):
    """A search with --jobs 2 long enough to be stopped while it trains, and its worker."""
    command = [TUNER, "search", "--task", "synthetic", "--study", "j", "--trials", "500"]
    command += ["--jobs", "2", "--steps", "1500", "--eval-every", "500", "--confirm", "0", *more]
    search = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TUNER_STORAGE": url},
    )
    deadline = time.monotonic() + 60
    while len(workers := workers_of(search.pid)) < 1:
        assert time.monotonic() < deadline and search.poll() is None
        time.sleep(0.1)
    return search, workers


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_the_workers_of_jobs_end_with_their_search_however_it_ends(sqlite_url, signum):
    search, workers = long_jobs(sqlite_url)
    try:
        # Well into the search: a worker is training, not starting.
        time.sleep(2)
        search.send_signal(signum)
        search.communicate(timeout=60)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in workers if alive(pid)]
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    assert search.returncode == -signum if signum == signal.SIGKILL else 128 + signum
    assert left == []
    # Each stopped its trial in flight as SIGTERM stops it: recorded, none left running.
    trials = optuna.load_study(study_name="j", storage=sqlite_url).trials
    running = [t.number for t in trials if t.state.name == "RUNNING"]
    assert len(running) <= (1 if signum == signal.SIGKILL else 0)


def test_workers_of_jobs_read_the_storage_from_their_environment_not_argv(postgres_url):
    # The test server trusts every connection: a password is sent, and ignored.
    url = parse_url(postgres_url).set(password="hunter2-secret")
    url = url.render_as_string(hide_password=False)
    subprocess.run([TUNER, "db", "upgrade", "--storage", url], check=True)
    search, workers = long_jobs(url)
    try:
        deadline = time.monotonic() + 60
        while not stored_trials(url, "j"):
            assert time.monotonic() < deadline and search.poll() is None
            time.sleep(0.2)
        shown = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in [search.pid, *workers]]
    finally:
        search.send_signal(signal.SIGINT)
        _, err = search.communicate(timeout=60)

    assert search.returncode == 130, err
    assert all(b"hunter2" not in line and b"postgresql" not in line for line in shown), shown
    trials = optuna.load_study(study_name="j", storage=url).trials
    assert "RUNNING" not in [t.state.name for t in trials]


def test_a_worker_of_jobs_killed_is_named_with_what_killed_it(sqlite_url):
    command = [TUNER, "search", "--task", "synthetic", "--study", "k", "--trials", "12"]
    command += ["--jobs", "2", "--steps", "1500", "--eval-every", "500", "--confirm", "0"]
    search = subprocess.Popen(
        [*command, "--storage", sqlite_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (workers := workers_of(search.pid)):
            assert time.monotonic() < deadline and search.poll() is None
            time.sleep(0.1)
        time.sleep(1)
        os.kill(workers[0], signal.SIGKILL)
        _, err = search.communicate(timeout=300)
    finally:
        search.kill()

    assert search.returncode == 0, err
    assert (
        f"A worker of --jobs (process {workers[0]}) was killed by SIGKILL: a trial it left "
        "running is failed and queued again as a dead worker's.\n"
    ) in err
    assert "its error is above" not in err
    states = [t.state.name for t in optuna.load_study(study_name="k", storage=sqlite_url).trials]
    assert "RUNNING" not in states
