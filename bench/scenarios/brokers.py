"""Start and stop the brokers under test: a fresh process, data directory and port for each measurement.

Lapine runs as ``python -m lapine``; RabbitMQ runs from the
Debian package as its own node (node name, ports, mnesia and log directories, enabled-plugins file
and Erlang cookie all private to the benchmark), so it never meets another node on this machine.
The broker's pid is the process whose VmRSS and CPU time are measured: the Python interpreter for
Lapine, beam.smp for RabbitMQ.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class BrokerError(RuntimeError):
    pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port(preferred: int, tries: int = 20) -> int:
    """``preferred`` if nothing listens there, else the next free port above it."""
    for port in range(preferred, preferred + tries):
        if port_is_free(port):
            if port != preferred:
                holder = subprocess.run(["ss", "-ltnpH", f"sport = :{preferred}"], capture_output=True, text=True)
                print(f"port {preferred} is in use ({holder.stdout.strip()[:160]}); using {port}", file=sys.stderr)
            return port
    raise BrokerError(f"ports {preferred}..{preferred + tries - 1} are all in use")


def wait_for_port(port: int, timeout: float, alive: object = None, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_is_free(port, host):
            return
        if callable(alive) and not alive():
            raise BrokerError("the broker exited while starting")
        time.sleep(0.05)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in kB, from /proc/PID/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def lapine_env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@functools.cache
def lapine_help(pythonpath: str | None) -> str:
    return subprocess.run(
        [sys.executable, "-m", "lapine", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=lapine_env(pythonpath),
    ).stdout


def snapshot_lapine(src: Path) -> Path:
    """Copy the ``lapine`` package to a temporary directory, to put first on PYTHONPATH: a whole run
    then measures one version of Lapine, however the working tree changes meanwhile."""
    target = Path(tempfile.mkdtemp(prefix="lapine-src-"))
    shutil.copytree(src / "lapine", target / "lapine", ignore=shutil.ignore_patterns("__pycache__"))
    return target


class Broker:
    """What a scenario needs from a broker: a URL and the pid to measure."""

    name: str = ""
    port: int = 0
    pid: int = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> list[str]:
        """Stop the broker; return problems worth reporting (tracebacks in its log, a hard kill)."""
        raise NotImplementedError

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.problems = self.stop()


class LapineBroker(Broker):
    name = "lapine"

    def __init__(self, port: int, log_dir: Path, pythonpath: str | None = None, mqtt_port: int | None = None) -> None:
        self.port = self.preferred_port = port
        # An MQTT listener only for the MQTT benchmark (bench/mqtt.py); otherwise none.
        self.mqtt_port = self.preferred_mqtt_port = mqtt_port
        self.log_dir = log_dir
        self.pythonpath = pythonpath
        self.process: subprocess.Popen[bytes] | None = None
        self.data_dir: str | None = None
        self.log_path: Path | None = None
        self.problems: list[str] = []

    def start(self) -> None:
        self.port = free_port(self.preferred_port)
        self.data_dir = tempfile.mkdtemp(prefix="lapine-bench-")
        command = [
            sys.executable,
            "-m",
            "lapine",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            self.data_dir,
            "--log-level",
            "warning",
        ]
        # No management or Prometheus listener (their default ports belong to others here), as the
        # RabbitMQ node runs without plugins.
        help_text = lapine_help(self.pythonpath)
        for flag in ("--management-port", "--prometheus-port", "--mqtt-port", "--web-mqtt-port"):
            if flag in help_text and not (flag == "--mqtt-port" and self.preferred_mqtt_port):
                command += [flag, "-1"]
        if self.preferred_mqtt_port:
            self.mqtt_port = free_port(self.preferred_mqtt_port)
            command += ["--mqtt-port", str(self.mqtt_port)]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"lapine-{self.port}-{time.time_ns()}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=lapine_env(self.pythonpath)
            )
        process = self.process
        wait_for_port(self.port, 30, alive=lambda: process.poll() is None)
        self.pid = process.pid

    def stop(self) -> list[str]:
        problems: list[str] = []
        process = self.process
        if process is None:
            return problems
        if process.poll() is not None:
            problems.append(f"Lapine had exited by itself (status {process.returncode})")
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append("Lapine did not stop within 15 s of SIGTERM; killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.log_path is not None and self.log_path.exists():
            text = self.log_path.read_text(errors="replace")
            lines = [line for line in text.splitlines() if "Traceback" in line or "[ERROR]" in line]
            if lines:
                problems.append(f"{len(lines)} error line(s) in {self.log_path}: {lines[0][:200]}")
            else:
                self.log_path.unlink()
        self.process = None
        return problems


class RabbitBroker(Broker):
    name = "rabbitmq"

    def __init__(
        self,
        port: int,
        dist_port: int,
        log_dir: Path,
        node: str = "rabbit-bench@localhost",
        mqtt_port: int | None = None,
    ) -> None:
        self.port = self.preferred_port = port
        # With an MQTT port, the node runs the rabbitmq_mqtt plugin there (bench/mqtt.py).
        self.mqtt_port = self.preferred_mqtt_port = mqtt_port
        self.dist_port = self.preferred_dist_port = dist_port
        self.node = node
        self.log_dir = log_dir
        self.base: Path | None = None
        self.problems: list[str] = []

    @staticmethod
    def installed() -> bool:
        return (RABBITMQ_BIN / "rabbitmq-server").exists()

    def _env(self) -> dict[str, str]:
        assert self.base is not None
        env = dict(os.environ)
        env.update(
            HOME=str(self.base / "home"),  # a private Erlang cookie
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_PID_FILE=str(self.base / "pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
        )
        return env

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> None:
        self.port = free_port(self.preferred_port)
        self.dist_port = free_port(self.preferred_dist_port)
        self.base = Path(tempfile.mkdtemp(prefix="rabbitmq-bench-"))
        (self.base / "home").mkdir()
        (self.base / "enabled_plugins").write_text("[].\n")
        config = ""
        if self.preferred_mqtt_port:
            self.mqtt_port = free_port(self.preferred_mqtt_port)
            config = f"mqtt.listeners.tcp.default = {self.mqtt_port}\n"
            enabled = subprocess.run(
                [str(RABBITMQ_BIN / "rabbitmq-plugins"), "--offline", "enable", "rabbitmq_mqtt"],
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            if enabled.returncode != 0:
                raise BrokerError(f"rabbitmq-plugins enable rabbitmq_mqtt failed: {enabled.stderr or enabled.stdout}")
        (self.base / "rabbitmq.conf").write_text(config)
        started = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if started.returncode != 0:
            raise BrokerError(f"rabbitmq-server failed: {started.stderr or started.stdout}")
        waited = self.ctl("wait", str(self.base / "pid"), "--timeout", "90", timeout=120)
        if waited.returncode != 0:
            raise BrokerError(f"RabbitMQ did not start: {waited.stderr or waited.stdout}")
        self.pid = int((self.base / "pid").read_text().strip())
        wait_for_port(self.port, 30)

    def version(self) -> str:
        result = self.ctl("eval", "rabbit:base_product_version().", timeout=30)
        return result.stdout.strip().strip('"') if result.returncode == 0 else "unknown"

    def stop(self) -> list[str]:
        problems: list[str] = []
        if self.base is None:
            return problems
        stopped = self.ctl("stop", timeout=60)
        if stopped.returncode != 0:
            problems.append(f"rabbitmqctl stop failed: {stopped.stderr.strip()[:200]}")
        deadline = time.monotonic() + 30
        while self.pid and pid_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pid and pid_alive(self.pid):
            problems.append("RabbitMQ did not stop within 30 s; killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
        return problems
