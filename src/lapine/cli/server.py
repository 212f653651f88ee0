"""lapine-server: start a broker. Settings come from defaults, --config FILE, LAPINE_* and flags."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from lapine import __version__
from lapine.config import Config
from lapine.server.app import Server
from lapine.server.loop import new_event_loop
from lapine.store import StoreError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lapine-server", description="Lapine: an AMQP 0-9-1 message broker that behaves as RabbitMQ."
    )
    parser.add_argument("--host", help="interface to listen on (default: every interface, IPv4 and IPv6)")
    parser.add_argument("--port", type=int, help="AMQP port (default 5672; env LAPINE_PORT)")
    parser.add_argument(
        "--management-port", type=int, help="management API and UI port (15672; -1: off; env LAPINE_MANAGEMENT_PORT)"
    )
    parser.add_argument(
        "--prometheus-port", type=int, help="Prometheus port (15692; -1: off; env LAPINE_PROMETHEUS_PORT)"
    )
    parser.add_argument("--mqtt-port", type=int, help="MQTT port (1883; -1: off; env LAPINE_MQTT_PORT)")
    parser.add_argument(
        "--web-mqtt-port", type=int, help="MQTT over WebSocket port, /ws (15675; -1: off; env LAPINE_WEB_MQTT_PORT)"
    )
    parser.add_argument("--data-dir", help="where durable state lives (env LAPINE_DATA_DIR)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="(env LAPINE_LOG_LEVEL)")
    parser.add_argument("--config", help="a TOML file of settings (env LAPINE_CONFIG)")
    parser.add_argument("--version", action="version", version=f"Lapine {__version__}")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    """Defaults, then the config file, then the environment, then flags: the later wins."""
    import os

    environ = dict(os.environ) if environ is None else environ
    config = Config()
    config_file = args.config or environ.get("LAPINE_CONFIG")
    if config_file:
        config.update_from_file(config_file)
    config.update_from_env({k: v for k, v in environ.items() if k != "LAPINE_CONFIG"})
    flags = {
        name: getattr(args, name)
        for name in (
            "host",
            "port",
            "management_port",
            "prometheus_port",
            "mqtt_port",
            "web_mqtt_port",
            "data_dir",
            "log_level",
        )
        if getattr(args, name) is not None
    }
    config.update(flags)
    return config


async def serve(config: Config) -> None:
    server = Server(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logging.getLogger("lapine").info("signal received, stopping")
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = build_config(args)
    except (OSError, ValueError) as error:
        print(f"lapine-server: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
    )
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(config))
    except (OSError, StoreError) as error:
        print(f"lapine-server: cannot start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
