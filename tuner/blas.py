"""The BLAS that MLX calls on a Linux CPU, chosen before MLX loads, and the device it runs on.

The ``mlx-cpu`` wheel links the reference BLAS it bundles: a compiled ``digits`` trial runs
about 3× faster on OpenBLAS. The dynamic linker binds MLX's BLAS calls once, when ``mlx.core``
is first imported, and looks in the process's global scope first: a BLAS loaded there before
then (``RTLD_GLOBAL``, as ``LD_PRELOAD`` would) serves every call, and once MLX has loaded
nothing can change it. So :func:`load` must run before anything imports MLX: ``import tuner``
calls :func:`load_with_mlx`, so that whatever imports MLX after tuner (a notebook's cell, a
plugin, a task) loads OpenBLAS first. On macOS MLX uses Accelerate and Metal: there is nothing to
choose.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.abc
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from types import ModuleType

from tuner.errors import BadInput

CHOICES = ("auto", "bundled")
ENV = "TUNER_BLAS"
BUNDLED = "bundled reference BLAS"
# Where Debian and Ubuntu (libopenblas0-pthread, -openmp, -serial) and Fedora install it:
# looking there first is cheaper than asking ldconfig, which find_library runs.
_PLACES = (
    "/usr/lib/{arch}-linux-gnu/libopenblas.so.0",
    "/usr/lib/{arch}-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib64/libopenblasp.so.0",
    "/usr/lib64/libopenblas.so.0",
)


@dataclass(frozen=True)
class Blas:
    """The BLAS that MLX calls, in words: its name and, for the bundled one, why."""

    name: str
    why: str = ""
    # OpenBLAS is installed, but MLX had loaded before tuner could put it first.
    late: bool = False

    def __str__(self) -> str:
        return f"{self.name} ({self.why})" if self.why else self.name


# What the last load() found. Final once it is OpenBLAS, or once MLX has loaded.
_running: Blas | None = None


def load(choice: str | None = None) -> Blas | None:
    """Make MLX call OpenBLAS, where ``choice`` is ``auto`` and OpenBLAS is installed, by
    loading it before MLX; return the BLAS that MLX calls, or None off Linux.

    ``choice`` is ``auto`` or ``bundled``; None reads ``TUNER_BLAS`` (``auto`` when unset).
    OpenBLAS runs one thread unless ``OPENBLAS_NUM_THREADS`` says otherwise: on tuner's small
    models, handing work to other threads costs more than it gains. Calling again is harmless:
    only what happens before MLX loads counts, and later calls return what runs, whatever they
    ask. Raises BadInput on an unknown choice.
    """
    global _running
    choice = choice or os.environ.get(ENV) or "auto"
    if choice not in CHOICES:
        raise BadInput(
            f"unknown BLAS '{choice}': auto (OpenBLAS where installed) or bundled (MLX's own)"
        )
    if sys.platform != "linux":
        return None
    mlx_loaded = "mlx.core" in sys.modules
    if _running is not None and (mlx_loaded or _running.name != BUNDLED):
        return _running
    _running = _choose(choice, mlx_loaded)
    return _running


class _BeforeMlx(importlib.abc.MetaPathFinder):
    """Chooses the BLAS as MLX's core is about to load, unless it was chosen already: with
    ``TUNER_BLAS``, since a later ``load("bundled")`` would come too late. It finds nothing
    itself; the usual finders load MLX next."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "mlx.core" and _running is None:
            # A TUNER_BLAS that is no choice: a search refuses it, in its own words.
            with contextlib.suppress(BadInput):
                load()
        return None


def load_with_mlx() -> None:
    """Choose the BLAS when MLX is first imported, if nothing chose it before: ``import tuner``
    then ``import mlx`` runs MLX on OpenBLAS, with no call to :func:`load`. Harmless once MLX has
    loaded, or called again."""
    if sys.platform == "linux" and not any(isinstance(f, _BeforeMlx) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeMlx())


def _choose(choice: str, mlx_loaded: bool) -> Blas:
    first = _openblas_in_global_scope()
    # LD_PRELOAD, or whoever loaded it globally before MLX, put OpenBLAS first whatever is asked.
    if first is not None and (not mlx_loaded or "openblas" in os.environ.get("LD_PRELOAD", "")):
        return _ready(first)
    if choice == "bundled":
        return Blas(BUNDLED, "as asked")
    path = find_openblas()
    if path is None:
        return Blas(BUNDLED, "no OpenBLAS installed")
    if mlx_loaded:
        return Blas(BUNDLED, "mlx was imported before tuner could load OpenBLAS", late=True)
    try:
        library = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return Blas(BUNDLED, f"{path} failed to load")
    return _ready(library)


def find_openblas() -> str | None:
    """The OpenBLAS library to load: where the distributions install it, else found by name in
    the loader's cache; None where none is installed."""
    for place in _PLACES:
        path = place.format(arch=platform.machine())
        if os.path.exists(path):
            return path
    # Here for start-up time: it brings in subprocess and shutil, to run ldconfig.
    import ctypes.util

    return ctypes.util.find_library("openblas")


def _openblas_in_global_scope() -> ctypes.CDLL | None:
    process = ctypes.CDLL(None)
    return process if hasattr(process, "openblas_get_config") else None


def _ready(library: ctypes.CDLL) -> Blas:
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        library.openblas_set_num_threads(1)
    threads = library.openblas_get_num_threads()
    library.openblas_get_config.restype = ctypes.c_char_p
    # "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the name and version are enough.
    words = library.openblas_get_config().decode(errors="replace").split()
    name = " ".join(words[:2]) if words[:1] == ["OpenBLAS"] else "OpenBLAS"
    return Blas(f"{name} ({threads} thread{'' if threads == 1 else 's'})")


def check_device(device: str | None) -> str:
    """Make ``device`` MLX's default and return its name; None picks the GPU when there is one."""
    # Here, not at the top: this module chooses the BLAS before anything loads MLX.
    import mlx.core as mx

    if device is None:
        device = "gpu" if mx.is_available(mx.gpu) else "cpu"
    if device == "gpu" and not mx.is_available(mx.gpu):
        raise BadInput(
            "this MLX build has no GPU: on Linux install tuner[cuda] (mlx[cuda13]) for NVIDIA "
            "GPUs; on a Mac with Apple silicon, mlx brings Metal"
        )
    mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    return device
