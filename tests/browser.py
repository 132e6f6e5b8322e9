"""Debian's Chromium, headless, driven by playwright, for the tests of what tuner draws in
HTML; and a page opened in it offline.

Without a browser the tests that need one skip and say why; under CI (CI=true) they fail."""

import io
import os
import shutil
from contextlib import contextmanager

import pytest

DRAWN = (
    ".scatterlayer .points path, .scatterlayer .js-line, .barlayer .point path, "
    ".boxlayer .box, .boxlayer .points path, .heatmaplayer image"
)


def unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run the browser tests")
    pytest.skip(reason)


@contextmanager
def chromium():
    """Debian's Chromium, headless, through playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("no browser: playwright is not installed (pip install playwright)")
    path = os.environ.get("TUNER_TEST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        unavailable("no browser: Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, args=["--headless", "--no-sandbox"]
        )
        yield launched
        launched.close()


class Opened:
    """A page opened offline: what it logged as errors, and what it asked of the network."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route("**/*", self._offline)
        self.page.goto(path.as_uri())
        self.page.wait_for_function(
            "[...document.querySelectorAll('.plotly-graph-div')].every(d => d._fullLayout)"
        )

    def _offline(self, route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            self.requests.append(route.request.url)
            route.abort()

    def figures(self):
        """Each figure's key, its traces, and the marks drawn in its SVG."""
        return {
            key: (traces, marks)
            for key, traces, marks in self.page.evaluate(
                "[...document.querySelectorAll('.figure')].map(f => {"
                "  const gd = f.querySelector('.plotly-graph-div');"
                "  return [f.dataset.figure, gd.data.length,"
                f"    gd.querySelectorAll('{DRAWN}').length];"
                "})"
            )
        }

    def traces(self, key):
        """The traces of figure ``key`` as plotly holds them, without their data."""
        return self.page.evaluate(
            f"document.querySelector('[data-figure=\"{key}\"] .plotly-graph-div').data"
            ".map(t => ({name: t.name, showlegend: t.showlegend, line: t.line,"
            " marker: t.marker, legendgroup: t.legendgroup, xaxis: t.xaxis}))"
        )

    def text(self, selector="body"):
        return self.page.inner_text(selector)


def not_blank(png):
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    white = next((n for n, color in colors if color == (255, 255, 255)), 0)
    return len(colors) > 50 and white < 0.97 * image.width * image.height
