"""A report as one HTML page that needs nothing else: plotly.js and the style are inlined, so
it opens with no network, as on a cluster's login node or in a mail."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version

import plotly.graph_objects as go
import plotly.io
from plotly.offline import get_plotlyjs


@dataclass(frozen=True)
class Chart:
    """A figure, and the key that names it in the page (``data-figure``)."""

    key: str
    figure: go.Figure


@dataclass(frozen=True)
class Section:
    """A heading, and what follows it: HTML, already escaped, or charts."""

    key: str
    title: str
    parts: Sequence[str | Chart]


def paragraph(words: str, css: str = "") -> str:
    return f'<p class="{css}">{html.escape(words)}</p>'


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; }
h1 { font-size: 26px; margin: 28px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
nav a { margin-right: 14px; }
.lead { color: #444; margin: 4px 0; }
.empty { background: #fff6e0; border-left: 4px solid #e0a800; padding: 8px 12px; }
.verdict { font-weight: 600; }
.note { color: #666; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 10px 3px 0; text-align: left;
         vertical-align: top; }
th { border-bottom: 2px solid #bbb; }
table.pairs td:first-child { color: #666; white-space: nowrap; }
table.wide { display: block; overflow-x: auto; }
.figure { margin: 8px 0 20px; }
.answer { border: 2px solid #2a6ebb; border-radius: 6px; background: #f3f8fe; margin: 16px 0;
          padding: 4px 18px 12px; }
.answer h2 { border: none; margin: 12px 0 6px; }
.command { display: flex; gap: 8px; align-items: flex-start; margin: 2px 0 10px; }
.command code { flex: 1; background: #fff; border: 1px solid #ccd; padding: 6px 8px;
                font: 13px/1.4 ui-monospace, monospace; user-select: all; overflow-wrap: anywhere; }
"""
# Copies a command of the answer box; where the clipboard is refused (a page opened from a
# file may be), the command is selected instead, for Ctrl-C.
SCRIPT = """
function copyCommand(button) {
  const code = button.previousElementSibling;
  const select = () => window.getSelection().selectAllChildren(code);
  if (navigator.clipboard) {
    navigator.clipboard.writeText(code.innerText).then(
      () => { button.textContent = "Copied"; }, select);
  } else {
    select();
  }
}
"""


def render(title: str, lead: Sequence[str], sections: Sequence[Section]) -> str:
    """The page: a title, lead lines (HTML), a table of contents, and the sections."""
    made = f"Made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by tuner {version('tuner')}."
    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(_section(section) for section in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
<script>{SCRIPT}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
{"".join(lead)}
{paragraph(made, "note")}
<nav>{nav}</nav>
{body}
</body>
</html>
"""


def _section(section: Section) -> str:
    parts = [part if isinstance(part, str) else _chart(part) for part in section.parts]
    heading = f"<h2>{html.escape(section.title)}</h2>"
    return f'<section id="{section.key}">{heading}\n' + "\n".join(parts) + "</section>"


def _chart(chart: Chart) -> str:
    drawn = plotly.io.to_html(
        chart.figure,
        full_html=False,
        include_plotlyjs=False,
        div_id="figure-" + re.sub(r"[^A-Za-z0-9_-]", "_", chart.key),
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="figure" data-figure="{html.escape(chart.key)}">{drawn}</div>'
