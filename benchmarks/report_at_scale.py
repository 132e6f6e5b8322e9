"""How big a report of a large study is, how long ``tuner report`` takes to write it, and how
long headless Chromium takes to draw it; and, with ``--screenshot``, the README's picture of
the report of a real ``digits`` search.

The large study is built as ``query_at_scale.py`` builds its own (every optimizer and schedule,
parameters drawn by Optuna's random sampler, about half complete and the rest pruned, diverged
and failed, every step's loss and learning rate stored), with 2,000 trials by default. The
report is written by a fresh ``tuner report`` process; the drawing is timed in Debian's
Chromium, driven by playwright with every request but the file's refused, from the start of
navigation to the moment every figure has drawn, in a new page each time::

    python benchmarks/report_at_scale.py [--trials 2000] [--repeat 3]
    python benchmarks/report_at_scale.py --screenshot benchmarks/report.png

The screenshot runs ``tuner search --task digits`` with its defaults (60 trials, then 3x3
confirmation runs) into a new database, writes its report, and takes the top of the page.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from playwright.sync_api import Browser, sync_playwright
from query_at_scale import STUDY, build

TUNER = Path(sys.executable).with_name("tuner")
# What the README shows: the title, the history, and the optimizers' values.
SHOT = {"width": 1280, "height": 1700}
TARGET_MB, TARGET_S = 10, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="default 2000")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG", help="the README's picture")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="tuner-report-"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=["--headless", "--no-sandbox"]
            )
            if args.screenshot:
                screenshot(folder, browser, args.screenshot)
            else:
                measure(folder, browser, args.trials, args.repeat)
            browser.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(folder: Path, browser: Browser, trials: int, repeat: int) -> None:
    url = f"sqlite:///{folder / 'bench.db'}"
    started = time.perf_counter()
    build(url, trials, 300)
    print(f"built {trials:,} trials in {time.perf_counter() - started:.0f} s")
    report = folder / "report.html"
    writes = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([TUNER, "report", STUDY, "--storage", url, "-o", report], check=True)
        writes.append(time.perf_counter() - started)
    size = report.stat().st_size / 1e6
    draws = [draw(browser, report)[0] for _ in range(repeat)]
    print(f"tuner report, a fresh process: median {statistics.median(writes):.1f} s of {writes}")
    print(f"size: {size:.2f} MB (target under {TARGET_MB} MB)")
    drawn = ", ".join(f"{s:.2f}" for s in draws)
    print(
        f"drawn in Chromium: median {statistics.median(draws):.2f} s ({drawn}; target under "
        f"{TARGET_S} s)"
    )


def draw(browser: Browser, path: Path, shot: Path | None = None) -> tuple[float, list[str]]:
    """Seconds from navigation to every figure drawn, and the console's errors."""
    page = browser.new_page(viewport=SHOT)
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
    page.goto(path.as_uri())
    page.wait_for_function(
        "[...document.querySelectorAll('.plotly-graph-div')].every(d => d._fullLayout)",
        timeout=60_000,
    )
    seconds = page.evaluate("performance.now()") / 1000
    if errors:
        raise SystemExit(f"the page logged errors: {errors}")
    if shot is not None:
        page.screenshot(path=shot)
    page.close()
    return seconds, errors


def screenshot(folder: Path, browser: Browser, shot: Path) -> None:
    url = f"sqlite:///{folder / 'digits.db'}"
    search = [TUNER, "search", "--task", "digits", "--study", "digits", "--storage", url]
    subprocess.run(search, check=True, stdout=subprocess.DEVNULL)
    report = folder / "digits.html"
    subprocess.run([TUNER, "report", "digits", "--storage", url, "-o", report], check=True)
    seconds, _ = draw(browser, report, shot)
    print(f"wrote {shot}: the report of a default digits search, drawn in {seconds:.2f} s")


if __name__ == "__main__":
    main()
