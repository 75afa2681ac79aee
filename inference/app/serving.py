"""Starting the blending page's server: bind the address, serve until Ctrl+C, remove the server's files."""
from __future__ import annotations

import socket
import threading
import time
import webbrowser
from typing import Callable

from fastapi import FastAPI


def listen(app: FastAPI, host: str = "127.0.0.1", port: int = 8765):
    """A uvicorn server for `app` and the socket it will serve on, already bound (port 0: any free port).

    Returns:
        (server, socket, url): run it with `server.run(sockets=[socket])`, stop it with `server.should_exit = True`.

    Raises:
        ValueError when the address cannot be used (port taken, unknown host).
    """
    import uvicorn

    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port or --host") from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    return uvicorn.Server(uvicorn.Config(app, log_level="warning")), sock, url


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True,
          log: Callable[[str], None] | None = None) -> None:
    """Serve `app` until Ctrl+C, then remove its files.

    Args:
        host, port: where to listen (port 0: any free port); the address is printed once the server is up.
        open_browser: open the page in the default browser once the server is up.

    Raises:
        ValueError when the address cannot be used (port taken, unknown host).
    """
    try:  # whether or not the server ever starts, remove what create_app made
        server, sock, url = listen(app, host, port)

        def announce():
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                (log or _print)(f"stylemix app: serving on {url}  (Ctrl+C to stop)")
                if open_browser:
                    webbrowser.open(url)

        threading.Thread(target=announce, daemon=True).start()
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
    finally:
        app.state.blender.close()


def _print(message: str) -> None:
    print(message, flush=True)
