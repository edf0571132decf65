"""Ctrl-C that cannot be swallowed.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT arrives;
inside a third-party import guarded by a bare ``except:`` (seen while torchreid's dependencies
load) it is caught and lost, and the run goes on for minutes. The CLI installs :func:`handler`,
which also remembers the interrupt, and every batch loop calls :func:`check`, which raises it
again at the next safe point, so an interrupted run always ends (exit 130, nothing written).
"""

from __future__ import annotations

import signal
import threading

_seen = threading.Event()


def handler(signum, frame) -> None:
    _seen.set()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through :func:`handler` (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if an interrupt was seen, even if something swallowed it."""
    if _seen.is_set():
        raise KeyboardInterrupt
