"""The BLAS that MLX calls: OpenBLAS where installed, the bundled one when asked or when there is
none, and the same losses either way. The choice is made when a process starts, before MLX
loads, so every test runs a process of its own and reads which libraries it mapped.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tuner import open_results
from tuner.blas import find_openblas

linux = pytest.mark.skipif(sys.platform != "linux", reason="MLX's BLAS is chosen on Linux only")
needs_openblas = pytest.mark.skipif(
    sys.platform != "linux" or find_openblas() is None,
    reason="OpenBLAS is not installed here (apt install libopenblas0-pthread; CI installs it)",
)

# Runs the command line as the installed `tuner` does; at exit, says on the last line of stderr
# which BLAS libraries the process had mapped.
CHILD = """
import atexit, json, sys

def mapped():
    with open("/proc/self/maps") as maps:
        names = {line.split()[-1].rsplit("/", 1)[-1] for line in maps if ".so" in line}
    print(json.dumps(sorted(n for n in names if "blas" in n)), file=sys.stderr)

atexit.register(mapped)
{setup}
from tuner.cli import main
sys.argv[0] = "tuner"
main()
"""
# No OpenBLAS where tuner looks, nor in the loader's cache: a machine without it.
WITHOUT_OPENBLAS = """
import ctypes.util
import tuner.blas
tuner.blas._PLACES = ()
ctypes.util.find_library = lambda name: None
"""
SEARCH = ["search", "--study", "s", "--seed", "0", "--verbose", "--pruner", "none"]


def tuner_child(*args, setup="", **env):
    """Run the command line in a fresh process: (exit status, stderr without its last line,
    the BLAS libraries it mapped)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUNER_", "OPENBLAS_"))}
    clean.pop("LD_PRELOAD", None)
    run = subprocess.run(
        [sys.executable, "-c", CHILD.replace("{setup}", setup), *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
    )
    *lines, last = run.stderr.splitlines()
    return run.returncode, "\n".join(lines), json.loads(last)


def openblas(mapped):
    return any(name.startswith("libopenblas") for name in mapped)


@needs_openblas
def test_openblas_trains_to_the_same_losses_as_the_bundled_blas(tmp_path):
    # Muon orthogonalises with matmuls, Adafactor factors its moments: both lean on the BLAS.
    search = [*SEARCH, "--trials", "3", "--steps", "150", "--optimizers", "sgd,muon,adafactor"]
    search += ["--space", "lr=1e-3..1e-2:log"]
    urls = {}
    for blas in ("auto", "bundled"):
        urls[blas] = f"sqlite:///{tmp_path / blas}.db"
        status, stderr, mapped = tuner_child(*search, "--storage", urls[blas], "--blas", blas)
        assert status == 0, stderr
        if blas == "auto":
            assert "BLAS: OpenBLAS 0." in stderr and "(1 thread)" in stderr
            assert openblas(mapped), mapped
        else:
            assert "BLAS: bundled reference BLAS (as asked)" in stderr
            assert not openblas(mapped), mapped

    with open_results(urls["auto"]) as fast, open_results(urls["bundled"]) as bundled:
        for number in range(3):
            ours, theirs = fast.trial("s", number), bundled.trial("s", number)
            assert ours.params == theirs.params
            assert len(ours.losses) == 150
            # Summed in another order, float32 sums differ in their last bits; 150 steps of
            # training carry that to a few 1e-7 of the loss, measured.
            np.testing.assert_allclose(ours.losses, theirs.losses, rtol=1e-4)
            for name, value in ours.metrics.items():
                assert value == pytest.approx(theirs.metrics[name], rel=1e-4)


@needs_openblas
def test_tuner_blas_bundled_keeps_the_bundled_blas(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    args = [*SEARCH, "--trials", "1", "--steps", "20", "--storage", url]

    status, stderr, mapped = tuner_child(*args, TUNER_BLAS="bundled")

    assert status == 0, stderr
    assert "BLAS: bundled reference BLAS (as asked)" in stderr
    assert not openblas(mapped), mapped
    assert "trial 0 complete" in stderr


@linux
def test_without_openblas_a_search_runs_on_the_bundled_blas_and_says_why(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    args = [*SEARCH, "--trials", "1", "--steps", "20", "--storage", url]

    status, stderr, mapped = tuner_child(*args, setup=WITHOUT_OPENBLAS)

    assert status == 0, stderr
    assert "BLAS: bundled reference BLAS (no OpenBLAS installed)" in stderr
    assert not openblas(mapped), mapped
    assert "trial 0 complete" in stderr


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--blas", "fast"], {}, "'fast': give auto or bundled"),
        ([], {"TUNER_BLAS": "fast"}, "'fast' (from TUNER_BLAS): give auto or bundled"),
    ],
)
def test_an_unknown_blas_is_one_line_and_status_2(tmp_path, args, env, said):
    url = f"sqlite:///{tmp_path / 't.db'}"

    status, stderr, _ = tuner_child("search", "--storage", url, *args, **env)

    assert status == 2
    assert stderr == f"Error: Invalid value for '--blas': {said}"
    assert not (tmp_path / "t.db").exists()


def python(code, **env):
    """Run ``code`` in a fresh interpreter and return its stdout; it must succeed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUNER_", "OPENBLAS_"))}
    clean.pop("LD_PRELOAD", None)
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env}
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


@needs_openblas
def test_one_blas_thread_unless_openblas_num_threads_says_otherwise():
    code = "import tuner.blas; print(tuner.blas.load())"

    assert python(code).endswith("(1 thread)")
    assert python(code, OPENBLAS_NUM_THREADS="2").endswith("(2 threads)")


@needs_openblas
def test_after_mlx_has_loaded_the_bundled_blas_stays_and_a_search_on_the_cpu_says_so(tmp_path):
    code = f"""
import warnings
import mlx.core
import tuner

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tuner.search("digits", trials=1, steps=10, storage="sqlite:///{tmp_path / "t.db"}",
                 device="cpu")
print(tuner.blas.load(), "|", *[str(w.message) for w in caught])
"""
    said = python(code)

    assert said.startswith(
        "bundled reference BLAS (mlx was imported before tuner could load OpenBLAS) | "
        "MLX runs its bundled reference BLAS: mlx was imported before tuner, which would have "
        "loaded OpenBLAS"
    )


@needs_openblas
def test_mlx_imported_after_tuner_loads_openblas_and_a_search_gives_no_warning(tmp_path):
    code = f"""
import warnings
import tuner
import mlx.core

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tuner.search("digits", trials=1, steps=10, storage="sqlite:///{tmp_path / "t.db"}")
print(tuner.blas.load(), "|", *[str(w.message) for w in caught])
"""
    said = python(code)

    assert said.startswith("OpenBLAS 0.") and said.endswith("|")


@needs_openblas
@pytest.mark.parametrize(
    ("setup", "env"),
    [("", {"TUNER_BLAS": "bundled"}), ("tuner.blas.load('bundled')", {})],
    ids=["TUNER_BLAS", "load"],
)
def test_mlx_imported_after_tuner_keeps_the_bundled_blas_when_asked(setup, env):
    code = f"import tuner\n{setup}\nimport mlx.core\nprint(tuner.blas.load())"

    assert python(code, **env) == "bundled reference BLAS (as asked)"


@needs_openblas
def test_tuner_search_chooses_the_blas_when_mlx_has_not_loaded(tmp_path):
    code = f"""
import tuner
tuner.search("digits", trials=1, steps=10, storage="sqlite:///{tmp_path / "t.db"}", blas="{{}}")
print(tuner.blas.load())
"""
    assert python(code.format("auto")).startswith("OpenBLAS 0.")
    assert python(code.format("bundled")) == "bundled reference BLAS (as asked)"


def test_the_command_line_and_the_api_import_no_mlx_before_the_blas_is_chosen():
    code = "import sys, tuner.cli, tuner.api; print(sorted(m for m in sys.modules if 'mlx' in m))"

    assert python(code) == "[]"
