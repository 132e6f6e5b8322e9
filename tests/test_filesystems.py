"""Workers never share a SQLite file on a network filesystem, whose locks fail: they are
refused in one line and pointed at PostgreSQL."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from test_refusals import digest

from tuner.cli import cli
from tuner.db import filesystems
from tuner.db.filesystems import NETWORK_FILESYSTEMS, filesystem_of, mounts

TABLE = [("/", "ext4"), ("/mnt", "ext4"), ("/mnt/shared", "nfs4"), ("/mnt/shared2", "ext4")]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/mnt/shared/tuner.db", "nfs4"),
        ("/mnt/shared", "nfs4"),
        ("/mnt/shared2/tuner.db", "ext4"),
        ("/mnt/tuner.db", "ext4"),
        ("/home/me/tuner.db", "ext4"),
    ],
)
def test_a_file_is_on_the_deepest_mount_above_it(path, kind):
    assert filesystem_of(Path(path), TABLE) == kind


def test_this_machines_own_folders_are_on_local_filesystems(tmp_path):
    kind = filesystem_of(tmp_path, mounts())

    assert kind is not None
    assert kind not in NETWORK_FILESYSTEMS


# No network filesystem can be mounted on these machines: the mount table is the one part
# played, by an NFS mount of the test's folder.
@pytest.mark.parametrize(
    "command",
    [
        ["worker", "s", "--trials", "4"],
        ["search", "--study", "s", "--task", "synthetic", "--trials", "4", "--jobs", "2"],
    ],
)
def test_workers_are_refused_a_sqlite_file_on_a_network_filesystem(command, tmp_path, monkeypatch):
    database = tmp_path / "tuner.db"
    url = f"sqlite:///{database}"
    made = CliRunner().invoke(
        cli, ["search", "--study", "s", "--task", "synthetic", "--trials", "2", "--confirm", "0",
              "--storage", url],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    before = digest(database)
    monkeypatch.setattr(filesystems, "mounts", lambda: [("/", "ext4"), (str(tmp_path), "nfs")])

    refused = CliRunner().invoke(cli, [*command, "--storage", url])

    assert refused.exit_code == 2
    assert refused.stderr == (
        f"Error: {database} is on a network filesystem (nfs), where SQLite's locks fail and "
        "workers would corrupt it: share a PostgreSQL database instead (--storage "
        "postgresql+psycopg://HOST/DB, pip install 'tuner[postgres]'), or keep the file on a "
        "local disk\n"
    )
    assert digest(database) == before
