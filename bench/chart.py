"""A PNG of the benchmark table: one bar pair per figure, normalized to RabbitMQ = 1.

    python bench/chart.py bench/results/bench-YYYYmmdd-HHMMSS.json [-o chart.png]

bench/run.py calls ``render`` itself after a run. For throughput a Lapine bar above 1 is better than
RabbitMQ; for latency and memory (marked "lower is better") a bar below 1 is.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any


def render(rows: list[dict[str, Any]], path: Path, title: str = "Lapine vs RabbitMQ") -> Path | None:
    """Draw ``rows`` (the "summary" of a results file) to ``path``; None when nothing is comparable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if row.get("lapine") is not None]
    if not rows:
        return None
    labels: list[str] = []
    lapine: list[float] = []
    rabbit: list[float] = []
    for row in rows:
        better = "higher" if row["better"] == "higher" else "lower"
        name = "\n".join(textwrap.wrap(row["title"], 48))
        labels.append(f"{name}\n{row['metric']} ({better} is better)")
        base = row.get("rabbitmq")
        if base:
            lapine.append(row["lapine"] / base)
            rabbit.append(1.0)
        else:  # Lapine alone: nothing to normalize to
            lapine.append(float("nan"))
            rabbit.append(float("nan"))

    height = 0.38
    fig, ax = plt.subplots(figsize=(11, 0.75 * len(rows) + 1.6))
    positions = list(range(len(rows)))
    ax.barh([p - height / 2 for p in positions], lapine, height, label="Lapine", color="#d9822b")
    ax.barh([p + height / 2 for p in positions], rabbit, height, label="RabbitMQ = 1", color="#8a8f98")
    for p, value, row in zip(positions, lapine, rows, strict=True):
        if value == value:  # not NaN
            ax.text(
                value, p - height / 2, f" {value:.2f}x ({_fmt(row['lapine'], row['unit'])})", va="center", fontsize=7
            )
        if row.get("rabbitmq"):
            ax.text(1.0, p + height / 2, f" {_fmt(row['rabbitmq'], row['unit'])}", va="center", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("Lapine / RabbitMQ (RabbitMQ = 1)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    finite = [v for v in lapine if v == v]
    ax.set_xlim(0, max([1.25, *(v * 1.35 for v in finite)]))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(value: float, unit: str) -> str:
    if unit == "msg/s":
        return f"{value:,.0f} msg/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.2f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Chart a bench/run.py results file.")
    parser.add_argument("results", type=Path)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    output = args.output or args.results.with_suffix(".png")
    title = f"Lapine vs RabbitMQ, {data.get('meta', {}).get('date', '')}"
    if render(data["summary"], output, title) is None:
        raise SystemExit("nothing to chart")
    print(output)


if __name__ == "__main__":
    main()
