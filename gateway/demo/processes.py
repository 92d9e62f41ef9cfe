"""Starting and stopping the demo's real processes: the gateway, its worker, agencies' endpoints."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, *, timeout: float = 20.0, process: subprocess.Popen | None = None,
                   name: str = "server") -> None:
    """Wait until something accepts TCP connections on ``port``; raise RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f} s")


class Processes:
    """The processes one demo run started; :meth:`stop_all` ends them (always called)."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir, self.env = workdir, env
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        env = dict(os.environ, **self.env, **(extra_env or {}))
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                start_new_session=True)
        log.close()
        self.running[name] = proc
        return proc

    def gateway_command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gateway.cli", *args]

    def stop(self, name: str, timeout: float = 10.0) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=timeout)

    def stop_all(self, timeout: float = 10.0) -> None:
        """End every process: all are told at once (SIGTERM to each process group), then each is waited for
        until ``timeout`` from now and killed if it is still there. One after another, a gunicorn that waits
        out its graceful timeout for the keep-alive connections of a process not stopped yet made each wait
        add up (a minute for the demo's seven under load)."""
        stopping = {name: proc for name, proc in self.running.items() if proc.poll() is None}
        self.running.clear()
        for proc in stopping.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in stopping.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
