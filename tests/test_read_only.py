"""A SQLite database tuner cannot write (a read-only mount, a read-only file) is read by every
reading command and refused in one line by every writing one, which writes nothing; and a
reading command leaves a database it could write exactly as it found it.

Root ignores file permissions, and these tests run as root, so read-only here means a real
read-only mount, which refuses even root: a tmpfs remounted read-only for a read-only folder,
and a file bind-mounted read-only onto itself for a read-only file in a writable folder.
Without the right to mount, the tests are skipped and say so.
"""

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from helpers import TUNER

from tuner.cli import cli
from tuner.db import WORKER_ATTR

SEARCH = (
    *("search", "--task", "synthetic", "--trials", "3", "--confirm", "1x1", "--quiet"),
    *("--optimizers", "sgd,adam", "--schedules", "constant", "--seed", "0"),
)
READERS = {
    "studies": (["studies"], '"name": "s"'),
    "best": (["best", "s"], '"outcome": "complete"'),
    # The trial Optuna alone holds, read through Optuna's storage.
    "trials": (["trials", "s"], '"outcome": "running"'),
    "show": (["show", "s", "0"], '"number": 0'),
    "compare": (["compare", "s"], '"study": "s"'),
    "export": (["export", "s"], '"optimizer": {'),
    "db current": (["db", "current"], '"status": "current"'),
    "db check": (["db", "check"], '"ok": true'),
}
WRITERS = {
    "search": ["search", "--task", "synthetic", "--trials", "4", "--study", "s", "--confirm", "0"],
    "confirm": ["confirm", "s"],
    "db upgrade": ["db", "upgrade"],
}


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def unmount(where: Path) -> None:
    # Lazy, so that a process a failed test left on the mount cannot keep it there.
    subprocess.run(["umount", "--lazy", str(where)], check=False, capture_output=True)


def mount_tmpfs(folder: Path) -> None:
    try:
        mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder))
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        pytest.skip(f"a read-only database needs a read-only mount, and mounting failed: {detail}")


def seal(folder: Path) -> None:
    """Make the mount at ``folder`` read-only, to root too."""
    try:
        mount("-o", "remount,ro", str(folder))
    except subprocess.CalledProcessError as error:
        raise AssertionError(f"remounting {folder} read-only failed: {error.stderr}") from None


def make_study(folder: Path) -> Path:
    """A database with study 's' made by a real search, and one trial that Optuna holds RUNNING
    with no record of tuner's, as a live search leaves it: reading it takes Optuna's storage."""
    database = folder / "t.db"
    url = f"sqlite:///{database}"
    search = subprocess.run(
        [TUNER, *SEARCH, "--study", "s", "--storage", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert search.returncode == 0, search.stderr
    storage = optuna.storages.RDBStorage(url)
    running = optuna.load_study(study_name="s", storage=storage).ask()
    # Named as tuner names its workers' trials: a trial without a name is another client's.
    storage.set_trial_system_attr(running._trial_id, WORKER_ATTR, "elsewhere 1")
    # Closed, as the search would close it, so that its file can be sealed.
    storage.engine.dispose()
    return database


def installed_tuner(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed command, in a process of its own, as a user without TUNER_DEBUG runs it."""
    return subprocess.run(
        [TUNER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TUNER_DEBUG": ""},
    )


def listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> Iterator[Path]:
    """A read-only folder holding t.db, with a study 's'."""
    folder = tmp_path_factory.mktemp("medium")
    mount_tmpfs(folder)
    try:
        make_study(folder)
        seal(folder)
        yield folder
    finally:
        unmount(folder)


@pytest.fixture
def mounted(tmp_path) -> Iterator[Callable[[Path], None]]:
    """Mounts a fresh tmpfs on a folder, unmounted at the end of the test."""
    folders: list[Path] = []

    def mount_on(folder: Path) -> None:
        mount_tmpfs(folder)
        folders.append(folder)

    yield mount_on
    for folder in reversed(folders):
        unmount(folder)


@pytest.mark.parametrize("command", READERS)
def test_a_reading_command_reads_a_database_in_a_read_only_folder(command, medium):
    args, expected = READERS[command]

    url = f"sqlite:///{medium / 't.db'}"
    result = CliRunner().invoke(cli, [*args, "--format", "json", "--storage", url])

    assert result.exit_code == 0, result.output
    assert expected in result.stdout


@pytest.mark.parametrize("command", WRITERS)
def test_a_writing_command_refuses_a_database_in_a_read_only_folder(command, medium):
    database = medium / "t.db"

    result = installed_tuner(*WRITERS[command], "--storage", f"sqlite:///{database}")

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"Error: cannot write the database {database}: its folder is read-only "
        "(the commands that only read it, such as tuner best, still can)\n"
    )


def test_a_new_database_in_a_read_only_folder_is_refused(medium):
    database = medium / "new.db"

    result = installed_tuner(*SEARCH, "--storage", f"sqlite:///{database}")

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"Error: cannot create the database {database}: its folder is read-only\n"
    )


def test_a_read_only_file_in_a_writable_folder_is_read_and_refused_for_writing(tmp_path, mounted):
    folder = tmp_path / "work"
    folder.mkdir()
    mounted(folder)
    database = make_study(folder)
    # The file alone made read-only: a bind mount of it onto itself, remounted read-only.
    mount("--bind", str(database), str(database))
    try:
        mount("-o", "remount,bind,ro", str(database))
        before = listing(folder)
        url = f"sqlite:///{database}"

        refused = installed_tuner(*WRITERS["search"], "--storage", url)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr == (
            f"Error: cannot write the database {database}: the file is read-only "
            "(the commands that only read it, such as tuner best, still can)\n"
        )
        after = listing(folder)
        assert after.pop("t.db") == before["t.db"]
        # A read-only connection in a writable folder makes SQLite's -shm, and an empty -wal,
        # which it may not fold away on closing; nothing is logged in the -wal.
        # The empty file that workers lock to start trials one at a time was the search's.
        assert after.pop("t.db-claims") == before["t.db-claims"] == b""
        assert set(after) <= {"t.db-wal", "t.db-shm"}
        assert after.get("t.db-wal", b"") == b""

        read = installed_tuner("best", "s", "--format", "json", "--storage", url)
        assert read.returncode == 0, read.stderr
        assert json.loads(read.stdout)[0]["outcome"] == "complete"
    finally:
        unmount(database)


def test_a_database_tuner_never_switched_to_wal_is_read(tmp_path, mounted):
    folder = tmp_path / "medium"
    folder.mkdir()
    mounted(folder)
    database = make_study(folder)
    # As Optuna alone, or another tool, would leave it: switching it to WAL would be a write.
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode = DELETE")
    connection.close()
    seal(folder)

    result = installed_tuner("studies", "--format", "json", "--storage", f"sqlite:///{database}")

    assert result.returncode == 0, result.stderr
    assert [s["name"] for s in json.loads(result.stdout)] == ["s"]


def sealed_with_commits_in_wal(tmp_path, mounted, suffixes):
    """A read-only folder holding a copy of a study's files named by ``suffixes``, taken while
    the study's last commit was in its -wal file alone."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    database = make_study(scratch)
    folder = tmp_path / "medium"
    folder.mkdir()
    mounted(folder)
    writer = sqlite3.connect(database)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        with writer:
            writer.execute("UPDATE tuner_studies SET task = 'only-in-the-wal'")
        for suffix in suffixes:
            shutil.copy(f"{database}{suffix}", folder)
    finally:
        writer.close()
    seal(folder)
    return folder


def test_a_database_left_with_commits_in_its_wal_is_read_whole_and_not_written(tmp_path, mounted):
    # A writer that still has the file open, or was killed, leaves its last commits in the -wal
    # file, which SQLite reads through the -shm file: copied while the writer holds both.
    folder = sealed_with_commits_in_wal(tmp_path, mounted, ("", "-wal", "-shm"))

    url = f"sqlite:///{folder / 't.db'}"

    read = installed_tuner("studies", "--format", "json", "--storage", url)
    refused = installed_tuner("db", "upgrade", "--storage", url)

    assert read.returncode == 0, read.stderr
    assert [s["task"] for s in json.loads(read.stdout)] == ["only-in-the-wal"]
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith(f"Error: cannot write the database {folder / 't.db'}: ")


def test_a_database_left_with_commits_in_its_wal_but_no_shm_is_refused_not_read_in_part(
    tmp_path, mounted
):
    # A worker killed mid-search leaves its last commits in the -wal file; copied without the
    # -shm, into a folder that cannot hold a new one, SQLite can only read the file as immutable,
    # which skips the -wal and shows the study as it was before those commits.
    copy = sealed_with_commits_in_wal(tmp_path, mounted, ("", "-wal")) / "t.db"

    read = installed_tuner("studies", "--format", "json", "--storage", f"sqlite:///{copy}")

    assert read.returncode == 2, read.stdout
    assert read.stderr == (
        f"Error: {copy}-wal holds commits that are not yet in {copy}, and SQLite cannot read "
        f"them without {copy}-shm, which it cannot make in this read-only folder: copy {copy} "
        "and its -wal file together into a folder you can write, and read the copy\n"
    )


READ_ONLY_COMMANDS = {
    **{name: args for name, (args, _) in READERS.items()},
    "report": ["report", "s", "--output", "-"],
}


def test_a_reading_command_leaves_a_database_it_could_write_as_it_found_it(tmp_path):
    database = make_study(tmp_path)
    # Not in WAL mode, as Optuna alone or another tool leaves a file: switching it would write
    # its header (bytes 18 and 19), and a read must write nothing.
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode = DELETE")
    connection.close()
    before = listing(tmp_path)

    for name, args in READ_ONLY_COMMANDS.items():
        read = CliRunner().invoke(cli, [*args, "--storage", f"sqlite:///{database}"])

        assert read.exit_code == 0, (name, read.output)
        assert listing(tmp_path) == before, name
