"""One background thread that does a slide's heavy label work in order: full-resolution painting, saving.

At overview zoom a brush segment covers millions of full-resolution pixels; painting them takes longer
than a frame, so the window paints what the screen shows and queues the full-resolution work here.
Saving goes through the same queue, after the painting queued before it, so a save always holds every
stroke made before it. Undo, closing and painting at full resolution wait for the painting (``wait``).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class LabelJobs:
    """Runs callables one after another on a daemon thread; ``on_idle`` runs there when the queue empties."""

    def __init__(self, on_idle: Callable[[], None] | None = None, name: str = "label-jobs") -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self.on_idle = on_idle
        self.errors: list[BaseException] = []  # what a job raised; the next wait() raises the first
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._idle:
            return self._pending > 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(job)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job submitted so far has run; True unless ``timeout`` ran out first."""
        with self._idle:
            done = self._idle.wait_for(lambda: self._pending == 0, timeout)
        if self.errors:
            raise self.errors.pop(0)
        return done

    def close(self) -> None:
        """Run what is queued, then end the thread."""
        self.wait()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except BaseException as err:  # noqa: BLE001 - kept and raised where the GUI waits
                self.errors.append(err)
            empty = self._queue.empty()
            if empty and self.on_idle is not None:
                try:
                    self.on_idle()
                except BaseException as err:  # noqa: BLE001
                    self.errors.append(err)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
