"""lapine-server as a user runs it: settings from flags, environment and file; a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from lapine.cli.server import build_config, parse_args

# MQTT's default ports (1883, 15675) are not ours to take in tests.
NO_MQTT = ["--mqtt-port", "-1", "--web-mqtt-port", "-1"]
LAPINE = [sys.executable, "-m", "lapine"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flags_win_over_environment_which_wins_over_file(tmp_path: Path) -> None:
    config_file = tmp_path / "lapine.toml"
    config_file.write_text('port = 1111\nlog_level = "debug"\nheartbeat = 30\n')
    args = parse_args(["--config", str(config_file), "--port", "3333"])
    config = build_config(args, {"LAPINE_PORT": "2222", "LAPINE_LOG_LEVEL": "warning"})
    assert (config.port, config.log_level, config.heartbeat) == (3333, "warning", 30)


def test_mqtt_ports_come_from_flags_environment_and_file(tmp_path: Path) -> None:
    config_file = tmp_path / "lapine.toml"
    config_file.write_text("mqtt_port = 1884\nweb_mqtt_port = 15676\nmqtt_vhost = 'iot'\n")
    args = parse_args(["--config", str(config_file), "--mqtt-port", "-1"])
    config = build_config(args, {"LAPINE_WEB_MQTT_PORT": "0", "LAPINE_MQTT_ALLOW_ANONYMOUS": "false"})
    assert (config.mqtt_port, config.web_mqtt_port, config.mqtt_vhost) == (-1, 0, "iot")
    assert config.mqtt_allow_anonymous is False


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    config_file = tmp_path / "lapine.toml"
    config_file.write_text("no_such_setting = 1\n")
    with pytest.raises(ValueError, match="no_such_setting"):
        build_config(parse_args(["--config", str(config_file)]), {})


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


def test_server_starts_and_sigterm_closes_clients_with_connection_forced(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LAPINE_PORT": str(port), "LAPINE_DATA_DIR": str(tmp_path / "data")}
    server = subprocess.Popen(
        [*LAPINE, "--host", "127.0.0.1", "--management-port", "0", "--prometheus-port", "0", *NO_MQTT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port)
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        server.send_signal(signal.SIGTERM)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            connection.process_data_events(time_limit=5)
            connection.process_data_events(time_limit=5)
        assert closed.value.reply_code == 320
        assert closed.value.reply_text == "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
        output = server.stdout.read() if server.stdout else ""
    assert f"127.0.0.1:{port}" in output
    assert "Lapine" in output and "started" in output


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [*LAPINE, "--host", "127.0.0.1", "--port", str(port), "--management-port", "-1", *NO_MQTT],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert done.returncode == 1
    assert "cannot start" in done.stderr


def test_a_second_server_on_the_same_data_directory_says_why(tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "lapine", "--host", "127.0.0.1", "--data-dir", str(tmp_path)]
    args += ["--management-port", "-1", "--prometheus-port", "-1", *NO_MQTT]
    first = subprocess.Popen([*args, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        second = subprocess.run([*args, "--port", str(free_port())], capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert f"data directory {tmp_path} is in use by another Lapine (pid {first.pid})" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=20)
