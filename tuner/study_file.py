"""A stored study's options written back as a search file (``tuner show STUDY --config``),
which ``tuner search --config`` reads to continue the study or to repeat its trials."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tuner.plan import COUNT_ATTR
from tuner.space_grammar import scalar_text, stored_space

if TYPE_CHECKING:
    from tuner.query import Results


def study_settings(results: Results, study: str, storage: str) -> dict[str, Any]:
    """The options that made ``study``, as a search file holds them: with them, a search
    continues it, and under another study name repeats its trials. A storage URL that holds
    a password is left out."""
    from tuner.db.optuna import study_user_attrs  # start-up time: SQLAlchemy

    stored = results.settings(study)
    attrs = study_user_attrs(storage, study)
    settings: dict[str, Any] = {"study": study}
    if _password(storage) is None:
        settings["storage"] = storage
    settings |= _kept(stored, "task", "metric")
    settings["trials"] = attrs.get(COUNT_ATTR, results.study(study).counts.finished)
    settings["seed"] = results.provenance(study).seed
    # A searched batch size is the space's; the fixed one is then only the study's default.
    fixed = () if "batch_size" in stored["space"] else ("batch_size",)
    settings |= _kept(stored, "steps", *fixed, "eval_every", "sampler", "pruner")
    # A new study tries its known-good settings first: trials that say so tell it did.
    settings["defaults"] = any(t.default is not None for t in results.trials(study))
    settings["optimizers"] = list(stored["space"]["optimizers"])
    settings["schedules"] = list(stored["space"]["schedules"])
    settings["space"] = dict(stored_space(stored["space"]))
    return settings


def _kept(stored: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    # What an older tuner did not store is left to the search's default.
    return {key: stored[key] for key in keys if key in stored}


def _password(url: str) -> str | None:
    # Here for start-up time: every command's start imports this module, through tuner.cli.show.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def to_toml(settings: Mapping[str, Any], header: str = "") -> str:
    """A search file of ``settings``: the options first, then the space as ``[space]`` and
    one table for each prefix of its parameters (``[space.adam]``)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    space = settings.get("space", {})
    lines += [f"{_toml_key(k)} = {_toml(v)}" for k, v in settings.items() if k != "space"]
    groups: dict[str, list[str]] = {}
    for name, value in space.items():
        prefix, _, own = name.rpartition(".")
        groups.setdefault(prefix, []).append(f"{_toml_key(own)} = {_toml(value)}")
    for prefix, entries in sorted(groups.items(), key=lambda group: group[0] != ""):
        title = ".".join(["space", *map(_toml_key, prefix.split("."))] if prefix else ["space"])
        lines += ["", f"[{title}]", *entries]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        # A TOML basic string escapes what JSON does, and DEL besides.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return scalar_text(value)
