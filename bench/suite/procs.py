"""Processes the suite starts, stopped by PID, and the /proc figures read from them."""

import atexit
import os
import signal
import subprocess
import time
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessSet:
    """Started processes, each stopped by its PID on stop() or at interpreter exit."""

    def __init__(self):
        self.running = {}
        atexit.register(self.stop_all)

    def start(self, name, argv, log_path, env=None, stdin=None, stdout=None):
        log = open(log_path, "ab")
        process = subprocess.Popen(
            argv,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            env=env,
        )
        self.running[process.pid] = (name, process, log)
        return process

    def stop(self, process, timeout=10.0):
        entry = self.running.pop(process.pid, None)
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        if entry is not None:
            entry[2].close()

    def stop_all(self):
        for _pid, (_name, process, _log) in list(self.running.items()):
            self.stop(process, timeout=5.0)


def child_pids(parent):
    """Returns the PIDs whose parent is `parent` (the workers of an nginx master)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(entry))
    return children


def cpu_seconds(pids):
    """Returns the (user, system) CPU seconds of the processes, from utime and stime in /proc/PID/stat."""
    user = system = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state is field 3, so utime (14) and stime (15) are at 11, 12.
        user += int(fields[11]) / CLOCK_TICKS
        system += int(fields[12]) / CLOCK_TICKS
    return user, system


def status_kib(pids, field):
    """Returns the sum of a /proc/PID/status field (VmRSS, VmHWM) in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def wait_http(url, timeout, process=None):
    """Polls `url` until it returns 200; returns False on timeout or when `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def wait_port(host, port, timeout, process=None):
    """Waits until a TCP connect to host:port succeeds."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
