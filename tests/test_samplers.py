"""The samplers and pruners a search uses, against Optuna's own."""

import optuna

from tuner.samplers import MedianAsTrialBegan, make_sampler


def pruned_trials(pruner: optuna.pruners.BasePruner) -> list[int]:
    """The trials that ``pruner`` stops in a study of 30 seeded trials, each of which reports
    a curve that its parameter decides."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=make_sampler("tpe", 3), pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_float("rate", 0.01, 1.0, log=True)
        for step in range(1, 7):
            trial.report(1.0 / (1.0 + rate * step), step * 50)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.0 / (1.0 + rate * 6)

    study.optimize(objective, n_trials=30)
    return [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]


def test_the_median_pruner_on_the_study_as_a_trial_began_prunes_as_optunas_does():
    settings = {"n_startup_trials": 5, "n_warmup_steps": 50}

    ours = pruned_trials(MedianAsTrialBegan(**settings))

    assert ours == pruned_trials(optuna.pruners.MedianPruner(**settings))
    assert len(ours) >= 5
