"""``tuner report``: a study, or several compared, drawn in one self-contained HTML file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from tuner.api import DEFAULT_STORAGE
from tuner.cli import completion, storage_option
from tuner.errors import missing_extra


@click.command("report")
@click.argument(
    "studies", nargs=-1, required=True, metavar="STUDY...", shell_complete=completion.studies
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, allow_dash=True),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write, replaced if there is one; - writes to stdout.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    metavar="K",
    help="Draw the curves and schedules of the K best trials, and list them.",
)
@storage_option
def report_command(studies: Sequence[str], output: Path, top: int, storage: str) -> None:
    """Draw STUDY in one HTML file that opens in any browser, with no network.

    For one study: first, the answer (the confirmed winner, or else the best trial marked
    unconfirmed), its settings and verdict, and the commands to run next (export it, confirm
    it with more seeds, search again narrowed to the top trials); then the optimization
    history coloured by optimizer, populations shaded, the values of each
    optimizer and schedule, the confirmation runs and their verdict, the K best trials'
    learning curves and schedules, the learning rate against the value for each optimizer,
    parameter importances and parallel coordinates (Optuna's plots, from 20 complete sampled
    trials on), the leaderboard and the provenance. For several studies, such as one task
    searched with several seeds: their best values trial by trial, with the band they span,
    and where each optimizer stands in each. Needs the report extra: pip install
    'tuner[report]'.

    \b
    Examples:
      tuner report digits-brisk-otter
      tuner report digits-brisk-otter --top 5 -o brisk.html
      tuner report seed-0 seed-1 seed-2 -o seeds.html
    """
    try:
        # Here for start-up time, and because the extra may be missing: plotly and Optuna.
        from tuner.api import check_destination, render_report, write_whole
    except ModuleNotFoundError as error:
        raise missing_extra(error, "tuner report") from None
    to_stdout = str(output) == "-"
    if not to_stdout:
        check_destination(output)
    page = render_report(storage, studies, top, name_storage=storage != DEFAULT_STORAGE)
    if to_stdout:
        click.echo(page, nl=False)
        return
    write_whole(page, output)
    what = f"study {studies[0]}" if len(studies) == 1 else f"{len(studies)} studies compared"
    size = output.stat().st_size / 1e6
    click.echo(f"Wrote {output} ({size:.1f} MB), {what}: open it in a browser.")


COMMANDS = [report_command]
