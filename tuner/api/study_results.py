"""``StudyResults``: what :func:`tuner.search` returns, one study's results read back from its
storage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.export import build_optimizer, export_trial
from tuner.plugins import load_plugins
from tuner.query import open_results
from tuner.views import study_html

if TYPE_CHECKING:
    import pandas

    from tuner.results import Comparison, Confirmation, StudySummary, TrialDetail, TrialSummary


@dataclass(frozen=True)
class StudyResults:
    """One study's results, as :func:`search` returns them: each method is one read of the
    storage, through :class:`tuner.Results`, so it sees what other workers added since."""

    name: str
    storage: str
    plugins: tuple[str, ...] = ()

    def summary(self) -> StudySummary:
        with open_results(self.storage) as results:
            return results.study(self.name)

    def best(self, n: int = 5, **filters: Any) -> list[TrialSummary]:
        """The top ``n`` finished trials; ``optimizer=`` and ``schedule=`` filter them."""
        with open_results(self.storage) as results:
            return results.best(self.name, n, **filters)

    def trials(self, **options: Any) -> list[TrialSummary]:
        """Every trial; the options are those of :meth:`tuner.Results.trials`."""
        with open_results(self.storage) as results:
            return results.trials(self.name, **options)

    def trial(self, number: int) -> TrialDetail:
        with open_results(self.storage) as results:
            return results.trial(self.name, number)

    def compare(self, by: str = "optimizer") -> Comparison:
        with open_results(self.storage) as results:
            return results.compare(self.name, by)

    def confirmation(self) -> Confirmation:
        """The confirmed configurations, the best mean first, and the verdict on the lead."""
        with open_results(self.storage) as results:
            return results.confirmation(self.name)

    def to_dataframe(self) -> pandas.DataFrame:
        """Every trial, one row each, flattened as ``tuner trials --format csv`` is, with the
        ``rank`` of each finished one, its ``outcome`` and ``finished_at`` as a datetime."""
        with open_results(self.storage) as results:
            return results.to_dataframe(self.name)

    def _repr_html_(self) -> str:
        """The study, its five best trials and its confirmation, as a notebook shows it."""
        with open_results(self.storage) as results:
            summary = results.study(self.name)
            best = results.best(self.name, 5) if summary.in_optuna else []
            return study_html(summary, best, results.confirmation(self.name))

    def export(self, trial: int | None = None, steps: int | None = None) -> dict[str, Any]:
        """The JSON config of a trial (by default the confirmed winner, or else the best
        complete one), as ``tuner export --format json`` prints it: its schedule over
        ``steps`` (the trial's own by default), its warmup the same fraction of them."""
        registry = load_plugins(self.plugins)
        return export_trial(self.storage, self.name, trial, registry, steps).config

    def optimizer(self, trial: int | None = None, steps: int | None = None) -> Any:
        """The ``mlx.optimizers`` optimizer of a trial, built as the trial built it."""
        return build_optimizer(self.export(trial), steps, plugins=self.plugins)
