"""Serve the desk on 127.0.0.1 (a port the system picks) until the command is stopped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def serve(root: Path, identity: str | None, open_browser: bool, announce: Callable[[str], None]) -> None:
    """Bind 127.0.0.1:0, announce the one-time address, open it in the browser, serve until Ctrl-C.

    Nothing is logged per request: a query string (a search) or a path could name a household.
    """
    import webbrowser

    from werkzeug.serving import WSGIRequestHandler, make_server

    from archivectl.desk.app import DeskState, create_app

    class _Silent(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: object) -> None:
            return None

    state = DeskState(root=root, identity=identity)
    server = make_server("127.0.0.1", 0, create_app(state), threaded=True, request_handler=_Silent)
    state.port = server.server_port
    url = f"{state.origin}/?token={state.token}"
    try:  # Ctrl-C at any moment from here on stops the desk the same way
        announce(url)
        if open_browser:
            webbrowser.open(url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
