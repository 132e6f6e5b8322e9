"""``tuner dashboard``: optuna-dashboard on a storage of tuner's.

optuna-dashboard reads Optuna's tables, which tuner's do not disturb; each trial carries
tuner's outcome, reason, steps and metrics as user attributes, so the dashboard shows them.
"""

from __future__ import annotations

import signal
from typing import Any

import click

from tuner.cli import storage_option
from tuner.errors import BadInput, TunerError, missing_extra
from tuner.query import open_results


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="The port to listen on.",
)
@storage_option
def dashboard_command(host: str, port: int, storage: str) -> None:
    """Start optuna-dashboard on the storage, until Ctrl-C.

    It shows tuner's studies as Optuna holds them, each trial with tuner's outcome (diverged
    included), reason, steps and metrics among its user attributes. It needs the dashboard
    extra: pip install 'tuner[dashboard]'.

    \b
    Examples:
      tuner dashboard
      tuner dashboard --port 8081 --storage postgresql+psycopg://me@db/tuner
    """
    # Here for start-up time, and because the extra may be missing: optuna-dashboard brings in
    # Optuna and bottle; wsgiref serves it, as optuna-dashboard's own command does.
    try:
        import optuna_dashboard
    except ModuleNotFoundError as error:
        raise missing_extra(error, "tuner dashboard") from None
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from tuner.db.optuna import read_only_storage

    with open_results(storage) as results:
        if not results.study_names():
            raise BadInput(f"no study in {results.storage} yet: tuner search makes one")
    app = optuna_dashboard.wsgi(read_only_storage(storage))

    class Server(ThreadingMixIn, WSGIServer):
        # A page asks for several things at once, as with optuna-dashboard's own command.
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        # The dashboard asks every few seconds: a line a request would bury the address.
        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = make_server(host, port, app, server_class=Server, handler_class=Quiet)
    except OSError as error:
        raise TunerError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; give another --port"
        ) from None
    with server:
        click.echo(f"optuna-dashboard on {results.storage}: http://{host}:{port} (Ctrl-C stops it)")
        # As a search stops: Ctrl-C, SIGTERM and SIGHUP end it with 128 + the signal's number,
        # even where it was started in the background, which ignores Ctrl-C.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop)
        server.serve_forever()


def _stop(signum: int, frame: object) -> None:
    # SystemExit, which the server does not catch as it catches a request's exceptions.
    raise SystemExit(128 + signum)


COMMANDS = [dashboard_command]
