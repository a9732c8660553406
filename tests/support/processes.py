"""Start and stop the test's helper processes by PID, with logs under tests/.run/."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
RUN_ROOT = TESTS_DIR / ".run"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing listens on right now.

    NOTE: another process can take the port between this call and the bind that uses it.
    The tests run their processes one session at a time, so this has not happened in
    practice, but a parallel run on one machine could hit it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Return the status of GET url, or None when the request fails to connect."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class ProcessStartError(RuntimeError):
    """A helper process exited or did not become ready in time."""


@dataclass
class ManagedProcess:
    """A helper process started by ProcessManager."""

    name: str
    argv: list[str]
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, max_bytes: int = 4000) -> str:
        """Return the end of the process's log, for failure messages."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode("utf-8", "replace")

    def is_running(self) -> bool:
        return self.popen.poll() is None


class ProcessManager:
    """Start helper processes and stop every one of them by PID.

    Each process writes stdout and stderr to `<log_dir>/<name>.log`. `stop_all` sends
    SIGTERM to each PID, waits `stop_timeout` seconds, then sends SIGKILL.
    """

    def __init__(self, log_dir: Path, stop_timeout: float = 5.0) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stop_timeout = stop_timeout
        self._processes: list[ManagedProcess] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], bool],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_timeout: float = 30.0,
    ) -> ManagedProcess:
        """Start `argv` and wait until `ready()` returns True.

        Raises ProcessStartError, after stopping the process, when it exits first or is
        not ready within `ready_timeout` seconds.
        """
        log_path = self.log_dir / f"{name}.log"
        suffix = 1
        while log_path.exists():
            suffix += 1
            log_path = self.log_dir / f"{name}-{suffix}.log"
        process_env = dict(os.environ)
        if env:
            process_env.update(env)
        log_file = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=process_env,
                cwd=cwd,
            )
        finally:
            log_file.close()
        managed = ManagedProcess(name=name, argv=list(argv), popen=popen, log_path=log_path)
        self._processes.append(managed)

        deadline = time.monotonic() + ready_timeout
        while True:
            if popen.poll() is not None:
                raise ProcessStartError(
                    f"{name} (pid {popen.pid}) exited with status {popen.returncode} before "
                    f"it was ready; log {log_path}:\n{managed.log_tail()}"
                )
            if ready():
                return managed
            if time.monotonic() > deadline:
                self.stop(managed)
                raise ProcessStartError(
                    f"{name} (pid {popen.pid}) was not ready after {ready_timeout:.0f} s; "
                    f"log {log_path}:\n{managed.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, managed: ManagedProcess) -> int | None:
        """Stop one process by PID and return its exit status."""
        popen = managed.popen
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.terminate()
            try:
                popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                popen.wait(timeout=self.stop_timeout)
        if managed in self._processes:
            self._processes.remove(managed)
        return popen.returncode

    def stop_all(self) -> None:
        """Stop every process still running, newest first."""
        for managed in reversed(list(self._processes)):
            self.stop(managed)
