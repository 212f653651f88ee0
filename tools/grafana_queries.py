"""Extract the PromQL of a Grafana dashboard into the list tests/management/test_grafana.py checks.

    python tools/grafana_queries.py DASHBOARD_JSON --source URL --commit SHA [-o OUTPUT]

Writes every panel's ``expr`` (in panel order, duplicates kept once) and every query variable of
the dashboard's templating, with where they came from. RabbitMQ's dashboards are MPL-2.0; the
output keeps their licence with the queries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "tests" / "data" / "grafana" / "RabbitMQ-Overview.queries.json"


def panel_expressions(node: Any) -> list[str]:
    """Every "expr" below node, depth first, each once."""
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("expr"), str) and item["expr"] not in found:
                found.append(item["expr"])
            stack.extend(reversed([value for key, value in item.items() if key != "templating"]))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """Query variables, name -> label_values(...) query, in the dashboard's order."""
    out: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        out[variable["name"]] = query["query"] if isinstance(query, dict) else query
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", type=Path)
    parser.add_argument("--source", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    dashboard = json.loads(args.dashboard.read_text())
    extracted = {
        "title": dashboard.get("title"),
        "source": args.source,
        "commit": args.commit,
        "licence": "MPL-2.0 (queries copied from the dashboard; https://mozilla.org/MPL/2.0/)",
        "variables": variables(dashboard),
        "expressions": panel_expressions(dashboard["panels"]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(extracted, indent=2) + "\n")


if __name__ == "__main__":
    main()
