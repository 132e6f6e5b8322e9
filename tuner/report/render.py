"""The report of one study, or of several compared, as the text of one HTML page."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.errors import BadInput
from tuner.query import open_results
from tuner.report.comparison_page import comparison_page
from tuner.report.read import read_detail, read_study
from tuner.report.study_page import study_page


def render_report(
    url: str, studies: Sequence[str], top: int = 10, *, name_storage: bool = True
) -> str:
    """The HTML report of ``studies`` at ``url``: of one study in full, with its ``top``
    finished trials' curves, or comparing several. BadInput names a study that is not there.
    The commands it gives name the storage with ``--storage`` when ``name_storage``; they run
    on the default storage, or TUNER_STORAGE, otherwise."""
    if not studies:
        raise BadInput("name a study to report, or several to compare")
    twice = sorted({name for name in studies if list(studies).count(name) > 1})
    if twice:
        raise BadInput(f"study '{twice[0]}' is named twice: name each study once")
    if top < 1:
        raise BadInput(f"top must be at least 1, got {top}")
    with open_results(url) as results:
        data = [read_study(results, name) for name in studies]
        detail = read_detail(results, studies[0], top) if len(studies) == 1 else None
        storage = results.storage
    if detail is None:
        return comparison_page(data, storage)
    return study_page(data[0], detail, storage, storage if name_storage else None)
