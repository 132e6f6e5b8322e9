"""A --study one typo away from a study that exists: asked about on a terminal, refused off one,
unless --new says that a new study is meant."""

import shlex

from helpers import tuner
from on_a_terminal import answer
from stored import stored_studies

TINY = ["--task", "synthetic", "--trials", "1", "--steps", "5", "--confirm", "0"]
TINY += ["--optimizers", "sgd", "--schedules", "constant"]


def search(url, study, *more):
    return tuner("search", *TINY, "--storage", url, "--study", study, *more)


def names(url):
    return sorted(stored_studies(url))


def test_off_a_terminal_a_typo_is_refused_with_the_name_meant(sqlite_url, tmp_path):
    assert search(sqlite_url, "digits-azure-lemur").exit_code == 0
    before = (tmp_path / "tuner.db").read_bytes()

    typo = search(sqlite_url, "digits-azure-lemon")

    assert typo.exit_code == 2, typo.output
    assert typo.stdout == ""
    assert typo.stderr == (
        f"Error: no study 'digits-azure-lemon' in {sqlite_url}; did you mean "
        "'digits-azure-lemur'? Give --new to start a new study of that name\n"
    )
    assert (tmp_path / "tuner.db").read_bytes() == before
    assert names(sqlite_url) == ["digits-azure-lemur"]


def test_new_says_a_new_study_is_meant_and_is_not_repeated(sqlite_url):
    assert search(sqlite_url, "mine").exit_code == 0

    meant = search(sqlite_url, "mien", "--new")
    again = search(sqlite_url, "mien", "--new")

    assert meant.exit_code == 0, meant.output
    assert names(sqlite_url) == ["mien", "mine"]
    assert "--new" not in meant.stdout.splitlines()[-1]
    assert again.exit_code == 2
    assert again.stderr == (
        "Error: --new: study 'mien' exists already; leave --new out to continue it\n"
    )


def test_a_numbered_series_and_a_name_far_from_any_are_new_studies(sqlite_url):
    assert search(sqlite_url, "run1").exit_code == 0

    assert search(sqlite_url, "run2").exit_code == 0
    assert search(sqlite_url, "other").exit_code == 0
    assert names(sqlite_url) == ["other", "run1", "run2"]


def test_on_a_terminal_a_typo_is_asked_about_first(sqlite_url, tmp_path):
    assert search(sqlite_url, "digits-azure-lemur").exit_code == 0
    args = ["search", *TINY, "--storage", sqlite_url, "--study", "digits-azure-lemon"]

    no, no_status = answer(args, b"n\n", tmp_path)
    assert names(sqlite_url) == ["digits-azure-lemur"]
    yes, yes_status = answer(args, b"y\n", tmp_path)

    question = (
        f"No study 'digits-azure-lemon' in {sqlite_url}, but there is 'digits-azure-lemur'. "
        "Start a new study 'digits-azure-lemon'? [y/N]: "
    )
    assert no.startswith(question)
    assert no_status == 1
    assert no.splitlines()[-1] == (
        f"Nothing run. To continue the other: --study {shlex.quote('digits-azure-lemur')}"
    )
    assert yes.startswith(question)
    assert yes_status == 0, yes
    assert names(sqlite_url) == ["digits-azure-lemon", "digits-azure-lemur"]
