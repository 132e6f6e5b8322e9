"""optuna-dashboard's WSGI app on a storage of tuner's, to which only reads are passed: its
API can also delete, create and change studies, without asking who asks, and has no read-only
mode.

optuna-dashboard reads Optuna's tables, which tuner's do not disturb; each trial carries
tuner's outcome, reason, steps and metrics as user attributes, and each study its task,
objective, steps, and confirmed winner with the verdict (:mod:`tuner.study_attrs`), so the
dashboard shows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tuner.db.optuna import read_only_storage
from tuner.errors import BadInput
from tuner.query import open_results

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

# The methods that read; bottle answers HEAD with its GET routes.
READS = ("GET", "HEAD")


def dashboard_app(storage: str) -> WSGIApplication:
    """optuna-dashboard's WSGI app on ``storage``, to which only reads are passed; BadInput
    when ``storage`` holds no study yet. Needs the dashboard extra."""
    # Here because the extra may be missing: ModuleNotFoundError, which the caller words.
    import optuna_dashboard

    with open_results(storage) as results:
        if not results.study_names():
            raise BadInput(f"no study in {results.storage} yet: tuner search makes one")
    return _reads_only(optuna_dashboard.wsgi(read_only_storage(storage)))


def _reads_only(app: WSGIApplication) -> WSGIApplication:
    """``app``, to which only reads are passed: anything else is answered 405."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] in READS:
            return app(environ, start_response)
        body = b"tuner dashboard is read-only\n"
        start_response(
            "405 Method Not Allowed",
            [
                ("Allow", ", ".join(READS)),
                ("Content-Type", "text/plain"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    return guarded
