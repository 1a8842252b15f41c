"""``strangler dashboard``: every service of the spec on one live, read-only web page."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from strangler.cli.app import OBSERVE, SpecOpt, app
from strangler.cli.observe import LogFormat, LogFormatOpt, Logger
from strangler.errors import BadInput


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command(rich_help_panel=OBSERVE)
def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to bind. Another than loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8484,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="STRANGLER_DASHBOARD_TOKEN",
            help="Every request must carry it (?token=… once, or a Bearer header).",
            show_default=False,
        ),
    ] = None,
    log_format: LogFormatOpt = LogFormat.text,
    file: SpecOpt = None,
) -> None:
    """Serve a live, read-only web page of every service (127.0.0.1 by default).

    Phase, traffic weight, sync lag, last verification, gate verdicts, what 'strangler run'
    waits for, the step running now, and history, for every service of the spec, updated
    as the journal changes. Stop it with Ctrl-C.

    Examples:
      strangler dashboard                          # http://127.0.0.1:8484/
      strangler dashboard --port 9000 -f prod.yaml
      strangler dashboard --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    from strangler.spec import find_spec_file, load_spec

    if not _loopback(host) and not token:
        raise BadInput(
            f"the dashboard shows the journal to whoever reaches {host}:{port}; "
            "outside 127.0.0.1 it needs a token",
            hint="pass --token SECRET (or set STRANGLER_DASHBOARD_TOKEN), or keep the default "
            "--host 127.0.0.1 and reach it through an SSH tunnel",
        )
    from strangler.render.dashboard import Dashboard

    spec = load_spec(find_spec_file(file))
    log = Logger(log_format, "strangler dashboard", to_stderr=True)
    with Dashboard(spec, host=host, port=port, token=token) as board:
        log.info(
            f"dashboard: {board.url} (read-only; Ctrl-C stops it)"
            + (" — open it with ?token=…" if token else ""),
            url=board.url,
        )
        try:
            board.wait()
        except KeyboardInterrupt:
            log.info("dashboard stopped")
