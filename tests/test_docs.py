"""The documentation site builds under ``mkdocs build --strict``, its generated command-line
reference names every command and option, its settings refuse a broken link and a page left
out of the navigation, and the README keeps the two quickstart commands CI reads."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from tuner.cli import cli

ROOT = Path(__file__).parent.parent
CONFIG = ROOT / ".ci" / "mkdocs.yml"
QUICKSTART = [
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/tuner search",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest",
]


def mkdocs_build(config, site):
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", site],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    built = mkdocs_build(CONFIG, site)
    assert built.returncode == 0, built.stderr
    return site


def commands(group, path=("tuner",)):
    """Every command under ``group``, the group itself first, by its path of names."""
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from commands(command, (*path, name))


def sections(page):
    """The text under each heading of a page's article, by the heading's text."""
    article = page[page.index("<article") : page.index("</article>")]
    parts = re.split(r"<h\d[^>]*>(.*?)</h\d>", article)

    def text(fragment):
        return html.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("¶", "")

    return {text(parts[i]).strip(): text(parts[i + 1]) for i in range(1, len(parts), 2)}


def test_the_cli_reference_names_every_command_and_option(site):
    reference = sections((site / "reference" / "cli" / "index.html").read_text())
    for path, command in commands(cli):
        title = " ".join(path)
        assert title in reference, f"{title} has no section"
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            names = [*param.opts, *param.secondary_opts]
            if isinstance(param, click.Argument):
                names = [param.metavar or param.name.upper()]
            for name in names:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", reference[title]), (
                    f"{title}: {name}"
                )


def test_the_api_reference_documents_the_public_functions(site):
    api = (site / "reference" / "api" / "index.html").read_text()
    for name in ["tuner.api.search", "tuner.query.open_results", "tuner.export.build_optimizer"]:
        assert f'id="{name}"' in api, name


def write_site(folder, pages, nav):
    """A site of ``pages`` with the real site's validation settings, and its config's path."""
    (folder / "docs").mkdir()
    for name, text in pages.items():
        (folder / "docs" / name).write_text(text)
    validation = yaml.safe_load(CONFIG.read_text())["validation"]
    settings = {"site_name": "t", "docs_dir": "docs", "nav": nav, "validation": validation}
    (folder / "mkdocs.yml").write_text(yaml.safe_dump(settings))
    return folder / "mkdocs.yml"


@pytest.mark.parametrize(
    "pages, nav, warning",
    [
        ({"index.md": "# A\n\n[b](b.md)\n"}, ["index.md"], "'b.md'"),
        ({"index.md": "# A\n\n[x](#nowhere)\n"}, ["index.md"], "no such anchor"),
        ({"index.md": "# A\n", "b.md": "# B\n"}, ["index.md"], 'not included in the "nav"'),
    ],
    ids=["broken link", "broken anchor", "page left out"],
)
def test_the_strict_build_fails_on_a_broken_link_or_a_page_left_out(tmp_path, pages, nav, warning):
    built = mkdocs_build(write_site(tmp_path, pages, nav), tmp_path / "site")
    assert built.returncode != 0
    assert warning in built.stderr


def test_a_sound_site_with_those_settings_builds(tmp_path):
    pages = {"index.md": "# A\n\n[b](b.md#b)\n", "b.md": "# B\n"}
    built = mkdocs_build(write_site(tmp_path, pages, ["index.md", "b.md"]), tmp_path / "site")
    assert built.returncode == 0, built.stderr


def test_the_readme_is_short_and_keeps_the_quickstart_that_ci_reads():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    quickstart = readme.split("## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"```bash\n(.*?)\n```", quickstart, re.DOTALL) == QUICKSTART
    # .ci/run reads the second with this awk program: it must find the same command.
    run = (ROOT / ".ci" / "run").read_text()
    (program,) = re.findall(r"readme_test=\$\(awk '(.*?)' README\.md\)", run)
    read = subprocess.run(["awk", program, "README.md"], cwd=ROOT, capture_output=True, text=True)
    assert read.stdout.strip() == QUICKSTART[1]
