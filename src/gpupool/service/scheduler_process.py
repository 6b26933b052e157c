"""The scheduler process: the loop of a ``gpupool serve``, in a process of its own, under the lease.

This module owns ``SchedulerProcess`` (the API process's handle on its scheduler child) and
``main`` (the child). ``gpupool serve`` answers the API in its own process and starts one
scheduler child (``python -m gpupool.service.scheduler_process``); the two talk only through
the database: submissions, cancellations, drains and tenancy changes are inbox rows, the
loop's decisions are job rows. So API and dashboard requests never hold the loop's GIL.

The child is a contender for the leader lease (``gpupool.service.leader``). As a standby it
tries to take the lease every ``RENEW_EVERY_S``; once it leads it builds the loop (the core
rebuilt from the database, the executors reconciled), runs it with the lease's fence and
renews the lease. When the lease is lost, or the loop stops, the child exits and its parent
starts a new one, which waits as a standby. It dies with its parent (``PR_SET_PDEATHSIG``, and
a check of the parent's pid at every renewal): a SIGKILLed ``gpupool serve`` leaves no leader
behind, and a standby takes over. Settings come on standard input (never in argv, which every
local account can read).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from gpupool.service.db import unavailable
from gpupool.service.leader import RENEW_EVERY_S, LeaderLease
from gpupool.service.settings import ServiceSettings

log = logging.getLogger("gpupool.service.scheduler")
#: seconds between a scheduler child's exit and the start of the next one
RESTART_AFTER_S = 1.0
_PR_SET_PDEATHSIG = 1


class SchedulerProcess:
    """Starts the scheduler child of an API process and starts it again when it exits."""

    def __init__(self, settings: ServiceSettings, holder: str, *, log_level: str = "") -> None:
        self.settings = settings
        self.holder = holder
        self.log_level = log_level or logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.starts = 0

    def start(self) -> None:
        self._stopping.clear()
        # The thread that starts the child must live as long as the child should: the
        # child's parent-death signal fires when this thread ends.
        self._thread = threading.Thread(target=self._supervise, name="gpupool-scheduler", daemon=True)
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpupool.service.scheduler_process"],
            stdin=subprocess.PIPE,
            start_new_session=False,
        )
        assert proc.stdin is not None
        message = {
            "settings": self.settings.model_dump(mode="json"),
            "holder": self.holder,
            "parent": os.getpid(),
            "log_level": self.log_level,
        }
        proc.stdin.write(json.dumps(message).encode())
        proc.stdin.close()
        return proc

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._proc = self._spawn()
            self.starts += 1
            code = self._proc.wait()
            if self._stopping.is_set():
                return
            log.warning("the scheduler process exited (status %s): starting it again as a standby", code)
            self._stopping.wait(RESTART_AFTER_S)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the child gracefully (it releases the lease), killing it after ``timeout_s``."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), and check it did not already."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def main() -> int:
    """The scheduler child: wait for the lease, then schedule until it is lost or we are told to stop."""
    message = json.loads(sys.stdin.buffer.read())
    parent = int(message["parent"])
    _die_with_parent(parent)
    logging.basicConfig(
        level=str(message.get("log_level") or "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # SIGINT too: Ctrl-C in a terminal reaches the whole process group
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    from gpupool.service.db import make_engine
    from gpupool.service.gpu_telemetry import TelemetryPublisher
    from gpupool.service.runtime import Runtime, tune_gc_for_serving

    settings = ServiceSettings(**message["settings"])
    holder = str(message["holder"])
    engine = make_engine(settings.url, synchronous=settings.sqlite_synchronous)
    reader = make_engine(settings.url, writer=False) if engine.dialect.name == "sqlite" else engine
    lease = LeaderLease.for_database(
        engine, settings.data_dir, holder, reader=reader, ttl_ms=settings.leader_lease_ttl_ms
    )

    def orphaned() -> bool:
        return os.getppid() != parent

    # built while standing by (the fleet read, engines made): taking over only rebuilds the core
    runtime = Runtime(settings, lease=lease)
    log.info("scheduler %d: standby, waiting for the leader lease", os.getpid())
    while not stop.is_set():
        try:
            if lease.try_acquire():
                break
        except Exception:  # the database is away: try again
            log.warning("could not contend for the leader lease", exc_info=True)
        if orphaned():
            break
        stop.wait(RENEW_EVERY_S / 4)
    if stop.is_set() or orphaned():
        runtime.stop()
        lease.release()
        return 0
    code = 0
    try:
        runtime.start()
        tune_gc_for_serving()
        log.info("scheduler %d: leader of epoch %s, scheduling", os.getpid(), lease.epoch)
        telemetry = TelemetryPublisher(runtime.factory)
        # The first renewal right after the first cycle: it tells the API processes (and a
        # failover measurement) when the new leader began to schedule.
        while runtime.loop.cycles == 0 and runtime.loop.alive and not stop.wait(0.01):
            pass
        while not stop.is_set():
            if orphaned():
                break
            loop = runtime.loop
            if not loop.alive:
                log.error("the loop stopped%s", " (lease lost)" if loop.lease_lost else "")
                code = 3
                break
            try:
                if not lease.renew(loop.last_cycle_ms, runtime.metrics.loop_snapshot()):
                    code = 3
                    break
            except Exception as e:  # the database is away: the fence guards every write meanwhile
                if not unavailable(e):
                    log.warning("could not renew the leader lease", exc_info=True)
                else:  # an outage: a line, not a traceback every renewal
                    log.warning(
                        "could not renew the leader lease: the database is unavailable (%s)", _first(e)
                    )
            try:  # the GPU samples the job detail page shows, for the API processes
                telemetry.publish(runtime.executors(), runtime.clock())
            except Exception as e:
                log.warning("could not publish GPU telemetry", exc_info=not unavailable(e))
            stop.wait(RENEW_EVERY_S)
    finally:
        runtime.stop()
        lease.release()
        engine.dispose()
        reader.dispose()
    return code


if __name__ == "__main__":
    sys.exit(main())
