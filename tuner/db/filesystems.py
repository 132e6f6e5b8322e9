"""Whether a SQLite file lies on a network filesystem, where workers must not share it.

SQLite's locks are only as good as the filesystem's, and over NFS, SMB and their kin they are
known to fail silently (https://www.sqlite.org/useovernet.html); its write-ahead log needs
memory that only one machine's processes share. Workers on such a file would corrupt it, or
wait on locks that never come, so they are refused and pointed at PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tuner.db.urls import parse_url, sqlite_path
from tuner.errors import BadInput

NETWORK_FILESYSTEMS = frozenset(
    "nfs nfs4 cifs smb smb2 smb3 smbfs afs 9p ceph glusterfs fuse.glusterfs lustre gpfs "
    "beegfs fuse.sshfs sshfs davfs fuse.s3fs webdav afpfs".split()
)


def filesystem_of(path: Path, mounts: Iterable[tuple[str, str]]) -> str | None:
    """The type of the filesystem that holds ``path``: that of the deepest of ``mounts``
    (mount point, type) above it."""
    found, depth = None, -1
    for point, kind in mounts:
        mounted = Path(point)
        if (path == mounted or mounted in path.parents) and len(mounted.parts) > depth:
            found, depth = kind, len(mounted.parts)
    return found


def mounts() -> list[tuple[str, str]]:
    """This machine's mount points and their filesystems' types: from ``/proc/self/mounts`` on
    Linux, from ``mount`` on macOS; none elsewhere."""
    if sys.platform == "linux":
        with open("/proc/self/mounts") as table:
            lines = [line.split() for line in table]
        # Spaces in a mount point are written as \040.
        return [(f[1].replace("\\040", " "), f[2]) for f in lines if len(f) > 2]
    if sys.platform == "darwin":
        # Each line: "server:/export on /Volumes/x (nfs, nodev, ...)".
        listed = subprocess.run(["mount"], capture_output=True, text=True).stdout
        found = []
        for line in listed.splitlines():
            head, _, options = line.rpartition(" (")
            _, _, point = head.partition(" on ")
            found.append((point, options.split(",")[0]))
        return found
    return []


def refuse_shared_over_network(storage: str) -> None:
    """BadInput when ``storage`` is a SQLite file on a network filesystem, which workers must
    not share."""
    url = parse_url(storage)
    if url.get_backend_name() != "sqlite" or not url.database:
        return
    path = sqlite_path(url)
    kind = filesystem_of(path, mounts())
    if kind in NETWORK_FILESYSTEMS:
        raise BadInput(
            f"{path} is on a network filesystem ({kind}), where SQLite's locks fail and "
            "workers would corrupt it: share a PostgreSQL database instead (--storage "
            "postgresql+psycopg://HOST/DB, pip install 'tuner[postgres]'), or keep the file on "
            "a local disk"
        )
