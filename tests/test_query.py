"""The query API, ``tuner.open_results``: what it answers about real searches, that it agrees
with Optuna, how it ranks, and that reading writes nothing."""

import math
import sqlite3
from datetime import UTC, datetime

import optuna
import pytest
from click.testing import CliRunner
from helpers import UNCONFIRMED, tuner
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from tuner import Counts, GroupStats, open_results
from tuner.cli import cli
from tuner.compare import MIN_FOR_SPREAD, group_stats, judge
from tuner.db import WORKER_ATTR, CurveRow, StudyRow, TrialRow, downgrade, open_store, upgrade
from tuner.errors import BadInput, TunerError


def search(storage, study, trials, *args):
    result = tuner(
        "search", "--storage", storage, *UNCONFIRMED, "--study", study, "--trials", trials, *args
    )
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A real search of 12 trials, shared by the tests that only read it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('query') / 'tuner.db'}"
    search(url, "s", "12")
    return url


@pytest.fixture
def copied(searched, tmp_path):
    """A copy of the searched database that a test may add to."""
    target = tmp_path / "copy.db"
    with (
        sqlite3.connect(searched.removeprefix("sqlite:///")) as source,
        sqlite3.connect(target) as copy,
    ):
        source.backup(copy)
    return f"sqlite:///{target}"


def dump(url):
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        return list(connection.iterdump())


def finished(study):
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_best_agrees_with_optuna(searched):
    study = optuna.load_study(study_name="s", storage=searched)
    with open_results(searched) as results:
        best = results.best("s", n=100)

    assert best[0].number == study.best_trial.number
    assert best[0].value == study.best_trial.value
    assert len(best) == len(finished(study)) == 12
    by_number = {t.number: t for t in study.trials}
    for trial in best:
        theirs = by_number[trial.number]
        assert trial.state == theirs.state.name
        assert trial.params == theirs.params
        assert trial.lr == theirs.params["lr"]
        assert (trial.optimizer, trial.schedule) == (
            theirs.params["optimizer"],
            theirs.params["schedule"],
        )
        assert trial.value == pytest.approx(theirs.value)
    complete = [t.value for t in best if t.state == "COMPLETE"]
    states = [t.state for t in best]
    assert complete == sorted(complete)
    assert states == sorted(states, key=["COMPLETE", "PRUNED"].index)


def test_best_filters_and_limits(searched):
    with open_results(searched) as results:
        adam = results.best("s", 3, optimizer="adam")
        pair = results.best("s", 100, optimizer=["adam", "sgd"], schedule="cosine")

    assert len(adam) <= 3 and {t.optimizer for t in adam} == {"adam"}
    assert pair and {t.schedule for t in pair} == {"cosine"}


def test_trials_filter_sort_and_limit(searched):
    with open_results(searched) as results:
        everything = results.trials("s")
        fastest = results.trials("s", sort="duration", limit=4)
        ranked = results.trials("s", sort="value")
        pruned = results.trials("s", state=["pruned", "diverged"], optimizer="sgd")
        best = results.best("s", 100)

    assert [t.number for t in everything] == list(range(12))
    assert [t.duration_s for t in fastest] == sorted(t.duration_s for t in everything)[:4]
    assert [t.number for t in ranked] == [t.number for t in best]
    assert all(t.outcome in ("pruned", "diverged") and t.optimizer == "sgd" for t in pruned)


def test_a_trial_in_full(searched):
    with open_results(searched) as results:
        trial = results.trial("s", 3)
        summary = results.study("s")
        settings = results.settings("s")

    assert len(trial.losses) == len(trial.lrs) == trial.steps
    assert trial.evals[-1]["step"] == trial.steps
    assert trial.metrics == {k: v for k, v in trial.evals[-1].items() if k != "step"}
    assert trial.provenance.versions["optuna"] == optuna.__version__
    assert 0 <= trial.provenance.seed < 2**32 and trial.seed is not None
    assert trial.provenance.command.startswith("tuner ")
    assert summary.counts.total == 12 and summary.counts.finished == 12
    assert (summary.task, summary.metric, summary.direction) == (
        "synthetic",
        "val_loss",
        "minimize",
    )
    assert settings["task"] == "synthetic" and settings["steps"] == 100


def test_compare_groups_and_judges(searched):
    with open_results(searched) as results:
        by_optimizer = results.compare("s")
        by_schedule = results.compare("s", by="schedule")
        best = results.best("s", 1)[0]

    assert {g.name for g in by_optimizer.groups} == {"adam", "sgd"}
    assert {g.name for g in by_schedule.groups} == {"constant", "cosine"}
    for comparison in (by_optimizer, by_schedule):
        leader = comparison.groups[0]
        assert sum(g.counts.total for g in comparison.groups) == 12
        assert leader.best_trial == best.number
        assert comparison.leader == leader.name
        assert comparison.gap == pytest.approx(
            abs(leader.best_value - comparison.groups[1].best_value)
        )
        assert comparison.verdict.startswith(f"{comparison.by.capitalize()} {leader.name} leads")
        if comparison.clear is not None:
            assert comparison.clear == (comparison.gap > comparison.spread)


def tuners(trial):
    """``trial``, named as tuner names the trials its workers run (here one on another
    machine): a trial without a name is another Optuna client's, which tuner leaves out."""
    trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, "elsewhere 1")
    return trial


def test_running_and_unrecorded_failed_trials_come_from_optuna(copied):
    study = optuna.load_study(study_name="s", storage=copied)
    running = tuners(study.ask({"optimizer": CategoricalDistribution(["adam", "sgd"])}))
    interrupted = tuners(study.ask({"optimizer": CategoricalDistribution(["adam", "sgd"])}))
    study.tell(interrupted, state=TrialState.FAIL)

    with open_results(copied) as results:
        counts = results.study("s").counts
        listed = results.trials("s", state=["running", "failed"])
        shown = results.trial("s", running.number)
        groups = results.compare("s").groups
        ranked = results.trials("s", sort="value")

    assert (counts.running, counts.failed, counts.total) == (1, 1, 14)
    assert [(t.number, t.outcome, t.state) for t in listed] == [
        (running.number, "running", "RUNNING"),
        (interrupted.number, "failed", "FAIL"),
    ]
    assert listed[0].optimizer == running.params["optimizer"]
    assert "before its record was written" in listed[1].reason
    assert shown.outcome == "running" and shown.losses == []
    assert sum(g.counts.total for g in groups) == 14
    assert [t.outcome for t in ranked[-2:]] == ["failed", "running"]


def test_trials_only_optuna_knows_are_filtered_and_ranked_with_the_rest(storage_url):
    crafted(storage_url, "minimize")
    study = optuna.create_study(study_name="c", storage=storage_url)
    for _ in range(10):  # The trials that tuner recorded.
        study.add_trial(optuna.trial.create_trial(value=0.0))
    choice = {"optimizer": CategoricalDistribution(["adam", "sgd"])}
    only_optuna = [
        ("failed", TrialState.FAIL, None, "sgd"),
        ("complete", TrialState.COMPLETE, 0.05, "adam"),
    ]
    for _, state, value, optimizer in only_optuna:
        params = {"optimizer": optimizer}
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params=params,
                distributions=choice,
                system_attrs={WORKER_ATTR: "elsewhere 1"},
            )
        )
    study.enqueue_trial({"optimizer": "sgd"})
    running = tuners(study.ask(choice))

    with open_results(storage_url) as results:
        best = results.best("c", 3)
        sgd = results.trials("c", optimizer="sgd", state=["failed", "running"])
        ranked = results.trials("c", sort="value")
        by_duration = results.trials("c", sort="duration")
        counts = results.counts("c", optimizer="sgd")
        leader = results.compare("c").groups[0]

    assert [t.number for t in best] == [11, 1, 2]
    assert best[0].optimizer == "adam" and best[0].value == 0.05
    assert [(t.number, t.outcome) for t in sgd] == [(8, "failed"), (10, "failed"), (12, "running")]
    assert [t.number for t in ranked[-3:]] == [8, 10, running.number]
    assert by_duration[-1].number == running.number
    assert counts == Counts(complete=1, failed=2, running=1)
    assert (leader.name, leader.best_trial) == ("adam", 11)


def row(number, optimizer, value, outcome):
    """A trial of the crafted study, with a constant schedule."""
    return TrialRow(
        number=number,
        optimizer=optimizer,
        schedule="constant",
        params={"lr": 0.1, "optimizer": optimizer, "schedule": "constant"},
        seed=number,
        steps=10,
        duration_s=1.0,
        step_time_s=0.1,
        compiled=True,
        metrics={},
        value=value,
        outcome=outcome,
        curve=CurveRow(losses=[], lrs=[], evals=[]),
        finished_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def crafted(storage, direction):
    """A study with every kind of value: ties, a better but pruned one, non-finite ones."""
    upgrade(storage)
    store = open_store(storage)
    space = {"optimizers": {"adam": {}, "sgd": {}}, "schedules": {"constant": {}}}
    store.save_study(
        StudyRow(
            name="c",
            task="synthetic",
            settings={"metric": "val_loss", "direction": direction, "space": space},
            plugins={},
            versions={},
            device="cpu",
            seed=0,
            command="tuner search",
        )
    )
    sign = 1 if direction == "minimize" else -1
    trials = [
        ("complete", 0.5),
        ("complete", 0.3),
        ("complete", 0.3),
        ("pruned", 0.1),
        ("pruned", math.nan),
        ("diverged", 0.2),
        ("diverged", None),
        ("diverged", math.inf),
        ("failed", None),
        ("pruned", -math.inf),
    ]
    for number, (outcome, value) in enumerate(trials):
        optimizer = "sgd" if number in (0, 8) else "adam"
        store.save_trial(
            "c", row(number, optimizer, None if value is None else sign * value, outcome)
        )
    store.close()


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_ranking_puts_complete_first_non_finite_last_and_ties_by_number(storage_url, direction):
    crafted(storage_url, direction)

    with open_results(storage_url) as results:
        best = results.best("c", 100)
        ranked = results.trials("c", sort="value")
        top = results.best("c", 2)
        summary = results.study("c")
        comparison = results.compare("c")

    assert [t.number for t in best] == [1, 2, 0, 3, 5, 4, 9, 6, 7]
    assert [t.number for t in ranked] == [1, 2, 0, 3, 5, 4, 9, 6, 7, 8]
    assert [t.number for t in top] == [1, 2]
    assert summary.best.number == 1
    assert best[5].to_json()["value"] is None
    assert [(g.name, g.best_trial) for g in comparison.groups] == [("adam", 1), ("sgd", 0)]
    assert comparison.gap == pytest.approx(0.2)
    assert comparison.groups[1].counts == Counts(complete=1, failed=1)
    # Adam's pruned 0.1 and diverged 0.2 are not comparable: its median is of 0.3 and 0.3.
    assert comparison.groups[0].median == pytest.approx(0.3 if direction == "minimize" else -0.3)


def test_compare_judges_complete_trials_alone(storage_url):
    crafted(storage_url, "minimize")
    store = open_store(storage_url)
    for number, value in enumerate([0.05, 0.04, 0.06, 0.05], start=10):
        store.save_trial("c", row(number, "sgd", value, "pruned"))
    store.close()

    with open_results(storage_url) as results:
        sgd = next(g for g in results.compare("c").groups if g.name == "sgd")

    # Four pruned values better than any complete one change none of sgd's statistics.
    assert (sgd.best_trial, sgd.best_value, sgd.median, sgd.iqr) == (0, 0.5, 0.5, None)
    assert sgd.counts.pruned == 4


def test_reading_a_missing_database_creates_nothing(tmp_path):
    with pytest.raises(BadInput, match=f"no database at {tmp_path / 'none.db'}"):
        open_results(f"sqlite:///{tmp_path / 'none.db'}")

    assert list(tmp_path.iterdir()) == []


def test_reading_writes_nothing(copied):
    before = dump(copied)

    with open_results(copied) as results:
        results.studies()
        results.best("s")
        results.trials("s", sort="value", limit=3)
        results.trial("s", 0)
        results.compare("s", by="schedule")

    assert dump(copied) == before


def test_a_database_without_tuner_tables_is_not_migrated(copied):
    downgrade(copied, "base")
    before = dump(copied)

    with open_results(copied) as results:
        assert results.studies() == []
        # Optuna's tables still hold it: saying there is no study would hide it.
        assert results.optuna_only_studies() == {"s": 12}
        with pytest.raises(BadInput, match=r"study 's' is in Optuna's tables alone: tuner has"):
            results.best("s")

    assert dump(copied) == before


@pytest.mark.parametrize(
    ("ask", "error"),
    [
        (lambda r: r.best("ss"), r"no study 'ss' in sqlite:///.*; did you mean 's'\?"),
        (lambda r: r.best("s", 0), "n must be at least 1, got 0"),
        (lambda r: r.best("s", optimizer="adamw"), "never used optimizer 'adamw'; it used adam"),
        (lambda r: r.trials("s", schedule="step"), "never used schedule 'step'; it used constant"),
        (lambda r: r.trials("s", state="done"), "unknown state 'done'"),
        (lambda r: r.trials("s", sort="speed"), "unknown sort 'speed'"),
        (lambda r: r.trials("s", limit=0), "limit must be at least 1, got 0"),
        (lambda r: r.trial("s", 12), "no trial 12: its trials are numbered 0 to 11"),
        (lambda r: r.compare("s", by="task"), "cannot group by 'task'"),
    ],
)
def test_bad_requests_say_what_exists(searched, ask, error):
    with open_results(searched) as results, pytest.raises(BadInput, match=error):
        ask(results)


def test_best_and_studies_on_postgres(postgres_url):
    assert CliRunner().invoke(cli, ["db", "upgrade", "--storage", postgres_url]).exit_code == 0
    search(postgres_url, "pg", "6")
    study = optuna.load_study(study_name="pg", storage=postgres_url)

    with open_results(postgres_url) as results:
        studies = results.studies()
        best = results.best("pg", 100)

    assert [s.name for s in studies] == ["pg"]
    assert studies[0].counts.finished == 6
    assert studies[0].best.number == best[0].number == study.best_trial.number
    assert {t.number: t.params for t in best} == {t.number: t.params for t in finished(study)}


def test_a_postgres_password_is_never_shown(postgres_url):
    url = postgres_url.replace("postgres@", "postgres:secret@", 1)

    with pytest.raises(TunerError) as raised:
        open_results(url).best("x")

    assert "secret" not in str(raised.value)


def group(name, best, outcome="complete", iqr=None):
    return GroupStats(name, Counts(complete=4), best, 0, outcome, best, iqr)


@pytest.mark.parametrize(
    ("groups", "clear", "verdict"),
    [
        ([group("a", 0.1, iqr=0.05), group("b", 0.3)], True, "the lead is clear."),
        ([group("a", 0.1), group("b", 0.15, iqr=0.1)], False, "the lead may be chance"),
        ([group("a", 0.1), group("b", 0.3)], None, "too few complete trials to measure"),
        ([group("a", 0.2), group("b", 0.2)], False, "a and b tie for the best val_loss, 0.2"),
        ([group("a", 0.1), group("b", None, None)], None, "Only optimizer a has complete"),
        ([group("a", None, None)], None, "No trial has completed with a value yet"),
    ],
)
def test_the_verdict_weighs_the_lead_against_the_spread(groups, clear, verdict):
    comparison = judge("s", "optimizer", "val_loss", "minimize", groups)

    assert comparison.clear is clear
    assert verdict in comparison.verdict


def test_groups_follow_their_best_trials_and_spread_needs_enough_values():
    rows = [("idle", 0, "failed", None)]
    rows += [("slow", n, "complete", 0.5 + n) for n in range(1, 1 + MIN_FOR_SPREAD)]
    rows += [("fast", 9, "pruned", 0.1), ("fast", 10, "complete", 0.2)]
    bests = [("fast", 10, "complete", 0.2), ("slow", 1, "complete", 1.5)]

    groups = group_stats(rows, bests)

    assert [g.name for g in groups] == ["fast", "slow", "idle"]
    assert (groups[0].best_trial, groups[0].best_outcome, groups[0].iqr) == (10, "complete", None)
    assert groups[1].iqr == 1.5
    assert groups[2].counts == Counts(failed=1) and groups[2].best_value is None
