"""Measure Lapine against RabbitMQ on this machine, in one run: ``python bench/run.py``.

Every measurement gets a fresh broker process (Lapine with a temporary --data-dir; RabbitMQ as a
private node); the two brokers alternate scenario by scenario and repetition by repetition, and the
table shows the median of the repetitions. Results go to bench/results/ as JSON and a PNG chart.
See bench/README.md for what each scenario does.

    python bench/run.py                          # everything, both brokers (when RabbitMQ is installed)
    python bench/run.py --quick                  # a short smoke run
    python bench/run.py --scenarios auto_ack,rpc --broker lapine --repeat 1
    python bench/run.py --profile                # Lapine under py-spy: auto_ack and manual_ack
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import chart
import scenarios
from scenarios import BY_NAME, SCENARIOS, Options, Scenario
from scenarios.brokers import Broker, BrokerError, LapineBroker, RabbitBroker, snapshot_lapine
from scenarios.pyspy import Spy, format_table, summarize

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine -------------------------------------------------------------------------------


def _command(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    amqplib = "?"
    package = BENCH / "loadgen" / "node_modules" / "amqplib" / "package.json"
    if package.exists():
        amqplib = json.loads(package.read_text())["version"]
    try:
        import pika

        pika_version = pika.__version__
    except ImportError:
        pika_version = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _command("node", "--version"),
        "amqplib": amqplib,
        "pika": pika_version,
        "lapine_commit": _command("git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"),
        "lapine_tree_dirty": bool(_command("git", "-C", str(BENCH.parent), "status", "--porcelain", "--", "src")),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def durability(args: argparse.Namespace) -> str:
    """Whether the Lapine under test writes persistent messages to its store, as far as its files tell."""
    root = Path(args.lapine_path) if args.lapine_path else BENCH.parent / "src"
    if (root / "lapine" / "broker" / "persistence.py").exists():
        return "the Lapine measured here has a message store (lapine/broker/persistence.py)."
    return "the Lapine measured here has no message store yet: its figure is of an in-memory broker."


# --- measurements --------------------------------------------------------------------------------


def make_broker(name: str, args: argparse.Namespace) -> Broker:
    logs = RESULTS / "logs"
    if name == "lapine":
        return LapineBroker(args.lapine_port, logs, pythonpath=args.lapine_path)
    return RabbitBroker(args.rabbitmq_port, args.rabbitmq_dist_port, logs)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all states but idle and iowait), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def process_cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_for_quiet(limit: float, threshold: float) -> float:
    """Wait up to ``limit`` seconds for other processes to leave the CPUs; return the busy cores seen last."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = machine_busy_seconds() - before
        if busy <= threshold or time.monotonic() >= deadline:
            return busy


def measure(
    scenario: Scenario,
    broker: Broker,
    options: Options,
    quiet: tuple[float, float] = (0, 0),
    spy: Spy | None = None,
) -> dict[str, Any]:
    started = time.time()
    busy_before = wait_for_quiet(*quiet) if quiet[0] > 0 else None
    try:
        broker.start()
    except BrokerError as error:
        broker.stop()
        return {"value": None, "fatal": f"broker did not start: {error}", "errors": []}
    except BaseException:  # interrupted: leave no broker behind
        broker.stop()
        raise
    try:
        # CPU of everything else on the machine while the scenario runs: the noise in its figure.
        machine0, broker0 = machine_busy_seconds(), process_cpu_seconds(broker.pid)
        children0 = os.times()
        t0 = time.monotonic()
        if spy is not None:
            spy.start(broker.pid)
        try:
            result = scenarios.run(scenario, broker, options)
        finally:
            if spy is not None:
                spy.finish()
        elapsed = time.monotonic() - t0
        machine1, broker1 = machine_busy_seconds(), process_cpu_seconds(broker.pid)
        children1 = os.times()
        if broker0 is not None and broker1 is not None:
            clients = (children1.children_user + children1.children_system) - (
                children0.children_user + children0.children_system
            )
            own = (children1.user + children1.system) - (children0.user + children0.system)
            other = (machine1 - machine0) - (broker1 - broker0) - clients - own
            result["otherCpuRun"] = max(0.0, other / elapsed)
    finally:
        problems = broker.stop()
    result["busyBefore"] = busy_before
    result["broker_problems"] = problems
    result["wall_seconds"] = time.time() - started
    return result


def issues_of(result: dict[str, Any]) -> list[str]:
    """What looked wrong in one measurement."""
    found: list[str] = []
    if result.get("fatal"):
        found.append(result["fatal"])
    for key, text in (
        ("lost", "messages not delivered after the publisher stopped"),
        ("duplicates", "deliveries beyond the messages published"),
        ("outOfOrder", "deliveries out of order"),
        ("nacked", "publishes nacked"),
        ("unconfirmed", "publishes never confirmed"),
        ("stray", "RPC answers with an unexpected correlation id"),
    ):
        if result.get(key):
            found.append(f"{result[key]} {text}")
    if result.get("drained") is False:
        found.append("the consumers stalled before the end (no progress for 5 s or more)")
    if result.get("minSecond") == 0:
        found.append("a second with no deliveries at all during the measurement")
    found.extend(result.get("errors") or [])
    found.extend(result.get("broker_problems") or [])
    return found


def summarize_runs(selected: list[Scenario], runs: list[dict[str, Any]], brokers: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for scenario in selected:
        for metric in scenario.metrics:
            row: dict[str, Any] = {
                "scenario": scenario.name,
                "title": scenario.title,
                "metric": metric.label,
                "unit": metric.unit,
                "better": metric.better,
                "footnote": bool(scenario.footnote),
            }
            for broker in ("lapine", "rabbitmq"):
                values = [
                    value
                    for run in runs
                    if run["scenario"] == scenario.name and run["broker"] == broker
                    for value in [metric.pick(run["result"])]
                    if value is not None
                ]
                row[f"{broker}_runs"] = values
                row[broker] = statistics.median(values) if values else None
                noise = [
                    other
                    for run in runs
                    if run["scenario"] == scenario.name and run["broker"] == broker
                    for other in [run["result"].get("otherCpu", run["result"].get("otherCpuRun"))]
                    if other is not None
                ]
                row[f"{broker}_other_cpu"] = statistics.median(noise) if noise else None
            lapine, rabbit = row["lapine"], row["rabbitmq"]
            row["ratio"] = lapine / rabbit if lapine is not None and rabbit else None
            rows.append(row)
    return rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "msg/s":
        return f"{value:,.0f} msg/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.2f} {unit}"


def table(rows: list[dict[str, Any]], both: bool) -> str:
    header = ["scenario", "Lapine", "RabbitMQ", "ratio Lapine/RabbitMQ"] if both else ["scenario", "Lapine"]
    header.append("other CPU" + (" L / R" if both else ""))
    body: list[list[str]] = []
    for row in rows:
        name = f"{row['title']}: {row['metric']}" + (" (*)" if row["footnote"] else "")
        cells = [name, fmt(row["lapine"], row["unit"])]
        if both:
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f} ({row['better']} is better)"
            cells += [fmt(row["rabbitmq"], row["unit"]), ratio]
        noise = [row.get(f"{b}_other_cpu") for b in (("lapine", "rabbitmq") if both else ("lapine",))]
        cells.append(" / ".join("-" if n is None else f"{n:.2f}" for n in noise))
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in body:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
    return "\n".join(out)


# --- the profile -----------------------------------------------------------------------------------


def profile(args: argparse.Namespace, options: Options, selected: list[Scenario], quiet: tuple[float, float]) -> int:
    """Run each scenario against Lapine with py-spy attached for the measured window only."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: list[str] = []
    for scenario in selected:
        if scenario.kind not in ("flow", "latency"):
            continue
        out = RESULTS / f"profile-{scenario.name}-{stamp}.txt"
        log(f"{scenario.name}: Lapine with py-spy attached -> {out}")
        broker = make_broker("lapine", args)
        # The load generator connects and warms up first; py-spy samples the measured window only.
        spy = Spy(out, rate=args.profile_rate, delay=options.warmup + 0.5, duration=max(1, int(options.duration) - 1))
        result = measure(scenario, broker, options, quiet, spy=spy)
        figure = [f"{m.label} {fmt(m.pick(result), m.unit)}" for m in scenario.metrics]
        for issue in issues_of(result):
            log(f"  ! {issue}")
        if not out.exists():
            log(f"  py-spy wrote no profile for {scenario.name}")
            continue
        rows, samples = summarize(out, top=args.top)
        head = f"## {scenario.title}: {', '.join(figure)} with py-spy attached"
        cpu = result.get("brokerCpu")
        if cpu is not None:
            head += f"; broker CPU {cpu * 100:.0f}% of a core"
        other = result.get("otherCpu")
        if other is not None:
            head += f"; other processes {other:.2f} cores"
        report += [head, "", "```", format_table(rows, samples), "```", ""]
    text = "\n".join(report)
    print(text)
    (RESULTS / f"profile-{stamp}.md").write_text(text + "\n")
    return 0


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = ",".join(s.name for s in SCENARIOS)
    parser.add_argument("--scenarios", help=f"comma-separated, of: {names} (default: all)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 10; --quick: 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before measuring (default 2; --quick: 1)")
    parser.add_argument("--repeat", type=int, help="measurements per broker; the table shows the median (default 3)")
    parser.add_argument("--broker", choices=["lapine", "rabbitmq", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: 3 s, once, 100k backlog")
    parser.add_argument(
        "--window",
        type=int,
        default=0,
        help="max messages in flight per throughput publisher (default 0: no limit, as applications publish)",
    )
    parser.add_argument("--backlog-count", type=int, help="messages in the backlog scenario (default 1,000,000)")
    parser.add_argument("--profile", action="store_true", help="profile Lapine with py-spy (auto_ack, manual_ack)")
    parser.add_argument("--top", type=int, default=15, help="functions in the profile summary")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--lapine-port", type=int, default=5681)
    parser.add_argument("--rabbitmq-port", type=int, default=5680)
    parser.add_argument("--rabbitmq-dist-port", type=int, default=25680)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="before each measurement, wait up to this many seconds for other processes to leave the CPUs "
        "(default 20; --quick: 0)",
    )
    parser.add_argument("--quiet-threshold", type=float, default=0.5, help="busy cores that count as quiet")
    parser.add_argument(
        "--live-tree",
        action="store_true",
        help="run Lapine from the working tree as it is at each start, not from a copy made when the run begins",
    )
    parser.add_argument("--no-chart", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        window=args.window,
        backlog_count=args.backlog_count or (100_000 if args.quick else 1_000_000),
        quick=args.quick,
    )
    repeat = args.repeat or (1 if args.quick or args.profile else 3)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 20.0)
    quiet = (quiet_wait, args.quiet_threshold)
    default = "auto_ack,manual_ack" if args.profile else ",".join(s.name for s in SCENARIOS)
    wanted = [name.strip() for name in (args.scenarios or default).split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BY_NAME]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    selected = [BY_NAME[name] for name in wanted]
    scenarios.loadgen_ready()
    args.lapine_path = None
    if not args.live_tree:
        args.lapine_path = str(snapshot_lapine(BENCH.parent / "src"))
    try:
        if args.profile:
            return profile(args, options, selected, quiet)
        return compare(args, options, selected, wanted, repeat, quiet)
    finally:
        if args.lapine_path:
            shutil.rmtree(args.lapine_path, ignore_errors=True)


def compare(
    args: argparse.Namespace,
    options: Options,
    selected: list[Scenario],
    wanted: list[str],
    repeat: int,
    quiet: tuple[float, float],
) -> int:
    brokers = ["lapine", "rabbitmq"] if args.broker == "both" else [args.broker]
    if "rabbitmq" in brokers and not RabbitBroker.installed():
        log("RabbitMQ is not installed: Lapine's figures alone")
        brokers = ["lapine"]
        if args.broker == "rabbitmq":
            return 1

    meta = machine()
    meta["options"] = {**vars(options), "repeat": repeat, "brokers": brokers}
    if "rabbitmq" in brokers:
        probe = make_broker("rabbitmq", args)
        assert isinstance(probe, RabbitBroker)
        try:
            probe.start()
            meta["rabbitmq"] = probe.version()
        except BrokerError as error:
            log(f"RabbitMQ does not start ({error}): Lapine's figures alone")
            brokers = ["lapine"]
        finally:
            probe.stop()
    log(f"scenarios {', '.join(wanted)}; brokers {', '.join(brokers)}; {repeat} run(s) each")

    runs: list[dict[str, Any]] = []
    for scenario in selected:
        for rep in range(repeat):
            # Alternate which broker goes first, so that slow drifts in the machine's load even out.
            order = brokers if rep % 2 == 0 else list(reversed(brokers))
            for name in order:
                log(f"{scenario.name} [{rep + 1}/{repeat}] {name} ...")
                result = measure(scenario, make_broker(name, args), options, quiet)
                figures = ", ".join(f"{m.label} {fmt(m.pick(result), m.unit)}" for m in scenario.metrics)
                log(f"  {figures}  ({result.get('wall_seconds', 0):.0f} s)")
                for issue in issues_of(result):
                    log(f"  ! {issue}")
                runs.append({"scenario": scenario.name, "broker": name, "rep": rep, "result": result})

    meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    rows = summarize_runs(selected, runs, brokers)
    both = "rabbitmq" in brokers
    print()
    print(table(rows, both))
    notes = [f"(*) {s.footnote.format(durability=durability(args))}" for s in selected if s.footnote]
    meta["notes"] = notes
    issues = [
        f"{run['broker']} {run['scenario']} run {run['rep'] + 1}: {issue}"
        for run in runs
        for issue in issues_of(run["result"])
    ]
    for note in notes:
        print(note)
    print(
        "other CPU: cores' worth of CPU used by other processes on the machine during the measurement "
        "(median); noise that competes with the broker and the load generator."
    )
    if issues:
        print("\nIssues seen during the run:")
        for issue in issues:
            print(f"  - {issue}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs, "issues": issues}, indent=1))
    print(f"\nresults: {path}")
    if not args.no_chart:
        try:
            png = chart.render(rows, path.with_suffix(".png"), f"Lapine vs RabbitMQ, {meta['date']}")
        except ImportError:
            png = None
            log("matplotlib is not installed (pip install matplotlib): no chart")
        if png is not None:
            print(f"chart:   {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
