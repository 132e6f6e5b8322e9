"""``tuner report`` and ``tuner schedule --plot``: a search drawn, in one HTML file that opens
anywhere with no network, and a schedule drawn to a PNG or HTML file.

A report of one study opens with its answer and the commands to run next
(:mod:`~tuner.report.answer`), then shows whether it converged, which optimizer and schedule
win and by how much, whether the lead survives fresh seeds, the best trials' curves and
schedules, how the value goes with the learning rate, which settings mattered, its
leaderboard and provenance; a report of several compares them (:mod:`~tuner.report.render`).
It reads through :class:`tuner.query.Results` alone (:mod:`~tuner.report.read`), and draws
with plotly, Optuna's plots among it (:mod:`~tuner.report.figures`,
:mod:`~tuner.report.curves`, :mod:`~tuner.report.slices`,
:mod:`~tuner.report.comparison_page`): the ``report`` extra, which this package's modules
import at their top, so that a command imports them only when it draws.
"""
