"""A graceful stop on SIGTERM / SIGINT: the training loop finishes its step, saves, then stops.

A cluster scheduler ends a job with SIGTERM (Slurm: before the time limit, or on preemption) and a user with
Ctrl-C. Dying in the middle of a step would lose everything since the last checkpoint; instead
:class:`StopRequest` only records the signal, the loop looks at :attr:`StopRequest.requested` after each step,
writes ``last.pt`` and raises :class:`~saip_bench.errors.Interrupted`. A second signal is not caught: the
previous handlers are back and the signal is delivered again, so a stuck run can still be killed.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

#: The signals a run stops gracefully on.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Context manager: while active, SIGTERM/SIGINT set :attr:`requested` instead of ending the process.

    The previous handlers are restored on exit. Outside the main thread (where Python cannot install signal
    handlers) it does nothing and :attr:`requested` stays None.

    Example::

        with StopRequest() as stop:
            for batch in loader:
                train_step(batch)
                if stop.requested:
                    save_checkpoint()
                    raise Interrupted(...)
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        #: The name of the signal received (``"SIGTERM"``), None while none came.
        self.requested: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:  # the second one: back to what was there, and let it act
            self._restore()
            signal.raise_signal(signum)
            return
        self.requested = name
        log.warning("%s received: stopping after this step (send it again to stop at once)", name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()
