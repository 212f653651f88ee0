"""Soak: 1,000 connections churning against a lapine-server for a few minutes; its memory must
stay flat and no file descriptor may leak.

    python bench/soak.py                          # 1,000 connections, 180 s
    python bench/soak.py --connections 2000 --duration 600

It starts ``lapine-server`` (management and Prometheus off, a temporary data directory) and runs
``--connections`` client slots on one asyncio loop. Each slot, over and over until the end: opens
a connection (raw AMQP 0-9-1, encoded with lapine.amqp), opens a channel, declares an exclusive
queue, publishes a few messages to it and consumes them, stays open a random while, then closes
cleanly (connection.close) or, one time in five, just drops the socket. So about ``--connections``
connections are open at any moment while thousands come and go.

Every ``--sample`` seconds it reads the server's VmRSS (/proc/PID/status) and its open file
descriptors (/proc/PID/fd). At the end every client leaves, and after a pause the server must be
back to the descriptors it had before the first client came; its RSS over the second half of the
run must not grow by more than ``--rss-slack`` MiB. The figures are printed as a table; the exit
status says whether both held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lapine.amqp import spec
from lapine.amqp.frames import PROTOCOL_HEADER, FrameReader, content_frames, method_frame

MIB = 1024 * 1024
BODY = b"soak" * 64  # 256 bytes
MESSAGES_PER_CONNECTION = 5


# --- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, data_dir: str, log_path: Path) -> subprocess.Popen[bytes]:
    executable = shutil.which("lapine-server")
    command = [executable] if executable else [sys.executable, "-m", "lapine"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir, "--log-level", "warning"]
    command += ["--management-port", "-1", "--prometheus-port", "-1", "--mqtt-port", "-1", "--web-mqtt-port", "-1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_raise_fd_limit)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return process
        if process.poll() is not None:
            raise SystemExit(f"lapine-server exited: see {log_path}")
        time.sleep(0.1)
    process.kill()
    raise SystemExit("lapine-server did not start in 20 s")


def _raise_fd_limit() -> None:
    """Both sides need a descriptor per connection: lift the soft limit to the hard one."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- one client ------------------------------------------------------------------------------------


class Client:
    """Just enough AMQP 0-9-1 over asyncio streams for the soak's scripted conversation."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = FrameReader(0)
        self.pending: list[tuple[int, int, bytes]] = []

    async def next_frame(self) -> tuple[int, int, bytes]:
        while not self.pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    async def expect(self, kind: type[spec.Method]) -> spec.Method:
        while True:
            frame_type, _channel, payload = await self.next_frame()
            if frame_type == 1:
                method = spec.decode_method(payload)
                if isinstance(method, kind):
                    return method

    def send(self, channel: int, method: spec.Method) -> None:
        self.writer.write(method_frame(channel, method))

    async def handshake(self) -> None:
        self.writer.write(PROTOCOL_HEADER)
        await self.expect(spec.ConnectionStart)
        properties = {"product": "soak", "capabilities": {"connection.blocked": True}}
        self.send(
            0,
            spec.ConnectionStartOk(
                client_properties=properties, mechanism="PLAIN", response=b"\0guest\0guest", locale="en_US"
            ),
        )
        tune = await self.expect(spec.ConnectionTune)
        assert isinstance(tune, spec.ConnectionTune)
        self.send(0, spec.ConnectionTuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0))
        self.send(0, spec.ConnectionOpen(virtual_host="/"))
        await self.expect(spec.ConnectionOpenOk)
        self.send(1, spec.ChannelOpen())
        await self.expect(spec.ChannelOpenOk)

    async def round_trip(self) -> None:
        """An exclusive queue, a few messages through it."""
        self.send(1, spec.QueueDeclare(queue="", exclusive=True))
        declared = await self.expect(spec.QueueDeclareOk)
        assert isinstance(declared, spec.QueueDeclareOk)
        for _ in range(MESSAGES_PER_CONNECTION):
            publish = spec.BasicPublish(exchange="", routing_key=declared.queue)
            self.writer.write(content_frames(1, publish, b"\x00\x00", BODY, 131072))
        self.send(1, spec.BasicConsume(queue=declared.queue, no_ack=True))
        await self.expect(spec.BasicConsumeOk)
        for _ in range(MESSAGES_PER_CONNECTION):
            await self.expect(spec.BasicDeliver)

    async def close(self, abrupt: bool) -> None:
        if abrupt:
            self.writer.transport.abort()
            return
        self.send(0, spec.ConnectionClose(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        await self.expect(spec.ConnectionCloseOk)
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass
class Tally:
    open: int = 0
    completed: int = 0
    abrupt: int = 0
    errors: list[str] = field(default_factory=list)


async def slot(port: int, deadline: float, hold: float, tally: Tally) -> None:
    """One client slot: connections one after another until the deadline."""
    await asyncio.sleep(random.uniform(0, hold))  # spread the first wave
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            tally.open += 1
            client = Client(reader, writer)
            await asyncio.wait_for(client.handshake(), 30)
            await asyncio.wait_for(client.round_trip(), 30)
            await asyncio.sleep(random.uniform(0, hold))
            abrupt = random.random() < 0.2
            await asyncio.wait_for(client.close(abrupt), 30)
            tally.completed += 1
            tally.abrupt += abrupt
        except (OSError, ConnectionError, TimeoutError, AssertionError) as error:
            tally.errors.append(repr(error))
            if writer is not None:
                writer.transport.abort()
        finally:
            if writer is not None:
                tally.open -= 1


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    elapsed: float
    rss: float
    fds: int
    clients_open: int
    completed: int


async def sampler(pid: int, started: float, every: float, tally: Tally, samples: list[Sample]) -> None:
    while True:
        samples.append(Sample(time.monotonic() - started, rss_mib(pid), open_fds(pid), tally.open, tally.completed))
        s = samples[-1]
        print(
            f"{s.elapsed:6.0f} s  RSS {s.rss:7.1f} MiB  fds {s.fds:5d}  "
            f"open {s.clients_open:5d}  done {s.completed:7d}",
            flush=True,
        )
        await asyncio.sleep(every)


async def churn(args: argparse.Namespace, pid: int, port: int) -> tuple[Tally, list[Sample]]:
    tally, samples = Tally(), []
    started = time.monotonic()
    deadline = started + args.duration
    watcher = asyncio.create_task(sampler(pid, started, args.sample, tally, samples))
    await asyncio.gather(*(slot(port, deadline, args.hold, tally) for _ in range(args.connections)))
    watcher.cancel()
    return tally, samples


def settle(pid: int, baseline_fds: int, timeout: float = 30.0) -> tuple[int, float]:
    """Wait for the server to let go of every client's descriptor."""
    deadline = time.monotonic() + timeout
    fds = open_fds(pid)
    while fds > baseline_fds and time.monotonic() < deadline:
        time.sleep(0.5)
        fds = open_fds(pid)
    time.sleep(2)
    return open_fds(pid), rss_mib(pid)


def report(
    args: argparse.Namespace, start: tuple[int, float], tally: Tally, samples: list[Sample], end: tuple[int, float]
) -> bool:
    half = [s for s in samples if s.elapsed >= args.duration / 2] or samples
    peak_fds = max(s.fds for s in samples)
    rss_growth = half[-1].rss - half[0].rss
    fds_ok = end[0] <= start[0]
    rss_ok = rss_growth <= args.rss_slack
    rows = [
        ("duration", f"{args.duration:.0f} s"),
        ("client slots (connections open at once)", f"{args.connections}"),
        ("connections completed (of which dropped abruptly)", f"{tally.completed} ({tally.abrupt})"),
        ("client errors", f"{len(tally.errors)}"),
        ("server fds: before clients / peak / after clients left", f"{start[0]} / {peak_fds} / {end[0]}"),
        ("server RSS: before clients", f"{start[1]:.1f} MiB"),
        (
            "server RSS: second half, first / last / max",
            f"{half[0].rss:.1f} / {half[-1].rss:.1f} / {max(s.rss for s in half):.1f} MiB",
        ),
        ("server RSS: after clients left", f"{end[1]:.1f} MiB"),
        ("verdict: no fd leak", "yes" if fds_ok else "NO"),
        (
            f"verdict: RSS flat (second-half growth {rss_growth:+.1f} MiB <= {args.rss_slack} MiB)",
            "yes" if rss_ok else "NO",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if tally.errors:
        print("first errors:", tally.errors[:5])
    return fds_ok and rss_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of churn (default 180)")
    parser.add_argument("--hold", type=float, default=2.0, help="most seconds a connection stays open (default 2)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--rss-slack", type=float, default=16.0, help="MiB the RSS may grow over the second half")
    args = parser.parse_args()
    _raise_fd_limit()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lapine-soak-") as data_dir:
        log_path = Path(data_dir) / "server.log"
        server = start_server(port, str(Path(data_dir) / "data"), log_path)
        try:
            time.sleep(1)
            start = (open_fds(server.pid), rss_mib(server.pid))
            tally, samples = asyncio.run(churn(args, server.pid, port))
            end = settle(server.pid, start[0])
            ok = report(args, start, tally, samples, end)
        finally:
            server.terminate()
            server.wait(timeout=30)
        tracebacks = log_path.read_text(errors="replace").count("Traceback")
        if tracebacks:
            print(f"server log has {tracebacks} tracebacks:")
            print(log_path.read_text(errors="replace")[-3000:])
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
