"""``tuner dashboard``: optuna-dashboard on a storage of tuner's, to read (the app is
:func:`tuner.api.dashboard_app`), served until a signal stops it."""

from __future__ import annotations

import ipaddress
import signal
import socket
from typing import Any

import click

from tuner.cli import storage_option
from tuner.errors import BadInput, TunerError, missing_extra


@click.command("dashboard")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; one other than loopback needs --public.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="The port to listen on.",
)
@click.option(
    "--public",
    is_flag=True,
    help="Listen on a --host other than loopback: anyone who can reach it reads every study "
    "in the storage, with no password.",
)
@storage_option
def dashboard_command(host: str, port: int, public: bool, storage: str) -> None:
    """Start optuna-dashboard on the storage, read-only, until Ctrl-C.

    It shows tuner's studies as Optuna holds them: each study with its task, metric, steps and
    confirmed winner with the verdict among its user attributes, and each trial with tuner's
    outcome (diverged included), reason, steps and metrics among its own. Only reads reach it: a
    request to delete, create or change a study or a note is answered 405. It needs the
    dashboard extra: pip install 'tuner[dashboard]'.

    \b
    Examples:
      tuner dashboard
      tuner dashboard --port 8081 --storage postgresql+psycopg://me@db/tuner
    """
    loopback = _loopback(host)
    if not public and not loopback:
        raise BadInput(
            f"--host {host} is not a loopback address: anyone who can reach it would read "
            "every study, with no password; give --public to serve it there anyway"
        )
    # Here for start-up time: optuna-dashboard brings in Optuna and bottle, and tuner.api's
    # storage SQLAlchemy; wsgiref serves it, as optuna-dashboard's own command does.
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from tuner.api import dashboard_app, mask_url

    try:
        app = dashboard_app(storage)
    except ModuleNotFoundError as error:
        raise missing_extra(error, "tuner dashboard") from None

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
        if not loopback:
            click.echo(
                f"Warning: http://{host}:{port} is open to anyone who can reach it, with no "
                "password: they read every study in the storage.",
                err=True,
            )
        where = f"http://{host}:{port}"
        click.echo(f"optuna-dashboard on {mask_url(storage)}: {where} (Ctrl-C stops it)")
        # As a search stops: Ctrl-C, SIGTERM and SIGHUP end it with 128 + the signal's number,
        # even where it was started in the background, which ignores Ctrl-C.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop)
        server.serve_forever()


def _loopback(host: str) -> bool:
    """Whether every address that ``host`` names is a loopback one."""
    try:
        found = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as error:
        raise BadInput(f"--host {host}: {getattr(error, 'strerror', None) or error}") from None
    # An IPv6 address may carry its scope: fe80::1%eth0.
    addresses = {ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found}
    return all(address.is_loopback for address in addresses)


def _stop(signum: int, frame: object) -> None:
    # SystemExit, which the server does not catch as it catches a request's exceptions.
    raise SystemExit(128 + signum)


COMMANDS = [dashboard_command]
