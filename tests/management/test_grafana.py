"""RabbitMQ's Grafana dashboard "RabbitMQ-Overview" finds everything it queries in Lapine's /metrics.

tests/data/grafana/RabbitMQ-Overview.queries.json holds the dashboard's PromQL (panels and
template variables, copied by tools/grafana_queries.py from rabbitmq-server, MPL-2.0). Without a
Prometheus at hand, the check plays its part: each endpoint is scraped as one target (Prometheus
adds the instance, job and here the namespace labels), the template variables are resolved as
Grafana resolves them (first value of label_values(...)), and then every series selector of every
expression must match at least one series, every label a group_left() copies must be on the
series it copies from, and every label a by() keeps must be there to keep.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from lapine.testing import BrokerThread
from tests.management.conftest import amqp_params

QUERIES = Path(__file__).resolve().parents[1] / "data" / "grafana" / "RabbitMQ-Overview.queries.json"
SCRAPE_LABELS = {"instance": "lapine:15692", "job": "rabbitmq", "namespace": "default"}

Series = dict[str, str]  # the metric name under "__name__", as Prometheus keeps it

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
SELECTOR = re.compile(r"\b(rabbitmq_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
CLAUSE = re.compile(r"\b(on|ignoring|group_left|group_right|by|without)\s*\(([^)]*)\)")
GROUP_LEFT = re.compile(r"group_left\s*\(([^)]*)\)\s*(rabbitmq_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
RANGE = re.compile(r"\[[^\]]*\]")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$")


def scrape(url: str) -> list[Series]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    series = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(LABEL.findall(match.group(2) or ""))
        series.append({"__name__": match.group(1), **labels, **SCRAPE_LABELS})
    return series


def matches(series: Series, name: str, matchers: str, variables: dict[str, str]) -> bool:
    if series["__name__"] != name:
        return False
    for label, operator, value in MATCHER.findall(matchers):
        for variable, resolved in variables.items():
            value = value.replace(f"${variable}", resolved)
        actual = series.get(label, "")
        if operator == "=" and actual != value:
            return False
        if operator == "!=" and actual == value:
            return False
        if operator == "=~" and not re.fullmatch(value, actual):
            return False
        if operator == "!~" and re.fullmatch(value, actual):
            return False
    return True


def select(scraped: list[Series], name: str, matchers: str, variables: dict[str, str]) -> list[Series]:
    return [series for series in scraped if matches(series, name, matchers or "", variables)]


def resolve_variables(scraped: list[Series], queries: dict[str, str]) -> dict[str, str]:
    """Grafana's template variables, in order, each the first value its label_values() finds."""
    resolved: dict[str, str] = {}
    for variable, query in queries.items():
        parsed = LABEL_VALUES.match(query)
        assert parsed is not None, query
        selector, label = parsed.groups()
        name, matchers = SELECTOR.match(selector.strip()).groups()  # type: ignore[union-attr]
        values = sorted({s[label] for s in select(scraped, name, matchers, resolved) if label in s})
        assert values, f"variable ${variable}: {query} finds no value"
        resolved[variable] = values[0]
    return resolved


def problems(expression: str, scraped: list[Series], variables: dict[str, str]) -> Iterator[str]:
    expression = RANGE.sub("", expression)
    available: set[str] = set()
    for labels, name, matchers in GROUP_LEFT.findall(expression):
        found = select(scraped, name, matchers, variables)
        for label in (part.strip() for part in labels.split(",") if part.strip()):
            if not any(label in series for series in found):
                yield f"group_left({label}) copies a label that {name} does not have"
    for name, matchers in SELECTOR.findall(CLAUSE.sub(" ", expression)):
        found = select(scraped, name, matchers, variables)
        if not found:
            yield f"no series for {name}{{{matchers}}}"
        for series in found:
            available.update(series)
    for clause, labels in CLAUSE.findall(expression):
        if clause == "by":
            for label in (part.strip() for part in labels.split(",") if part.strip()):
                if label not in available:
                    yield f"by({label}) keeps a label no series has"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(QUERIES.read_text())
    return loaded


@pytest.fixture(scope="module")
def busy_broker() -> Iterator[BrokerThread]:
    """A broker with a queue, a consumer and some traffic, so that per-object series exist too."""
    with BrokerThread() as broker:
        connection = pika.BlockingConnection(amqp_params(broker.url))
        channel = connection.channel()
        channel.queue_declare("grafana")
        channel.confirm_delivery()
        channel.basic_publish("", "grafana", b"x" * 150)
        channel.basic_consume("grafana", lambda *args: None)
        yield broker
        connection.close()


@pytest.mark.parametrize(("path", "endpoint"), [("/metrics", "aggregated"), ("/metrics/per-object", "per-object")])
def test_every_overview_expression_finds_its_series(
    busy_broker: BrokerThread, dashboard: dict[str, object], path: str, endpoint: str
) -> None:
    scraped = scrape(busy_broker.prometheus_url + path)
    variables = resolve_variables(scraped, dashboard["variables"])  # type: ignore[arg-type]
    assert variables["endpoint"] == endpoint
    assert variables["rabbitmq_cluster"] == busy_broker.server.broker.cluster_name  # type: ignore[union-attr]
    expressions: list[str] = dashboard["expressions"]  # type: ignore[assignment]
    assert len(expressions) == 50
    found = {expression: list(problems(expression, scraped, variables)) for expression in expressions}
    assert {expression: issues for expression, issues in found.items() if issues} == {}


def test_every_metric_the_overview_names_is_exported(busy_broker: BrokerThread, dashboard: dict[str, object]) -> None:
    expressions: list[str] = dashboard["expressions"]  # type: ignore[assignment]
    wanted = {name for e in expressions for name, _ in SELECTOR.findall(CLAUSE.sub(" ", RANGE.sub("", e)))}
    exported = {series["__name__"] for series in scrape(busy_broker.prometheus_url + "/metrics")}
    assert len(wanted) == 40
    assert sorted(wanted - exported) == []


def test_the_check_itself_reports_what_is_missing(busy_broker: BrokerThread, dashboard: dict[str, object]) -> None:
    scraped = [s for s in scrape(busy_broker.prometheus_url + "/metrics") if s["__name__"] != "rabbitmq_build_info"]
    variables = resolve_variables(scraped, dashboard["variables"])  # type: ignore[arg-type]
    uptime = next(e for e in dashboard["expressions"] if "rabbitmq_build_info" in e)  # type: ignore[attr-defined]
    assert list(problems(uptime, scraped, variables)) == [
        "group_left(rabbitmq_version) copies a label that rabbitmq_build_info does not have",
        "group_left(erlang_version) copies a label that rabbitmq_build_info does not have",
        "no series for rabbitmq_build_info{}",
    ]
    elsewhere = {**variables, "rabbitmq_cluster": "elsewhere"}
    queues = next(e for e in dashboard["expressions"] if e.startswith("sum(rabbitmq_queues "))  # type: ignore[attr-defined]
    assert list(problems(queues, scraped, elsewhere)) == [
        "group_left(rabbitmq_cluster) copies a label that rabbitmq_identity_info does not have",
        'no series for rabbitmq_identity_info{rabbitmq_cluster="$rabbitmq_cluster", namespace="$namespace",'
        'rabbitmq_endpoint="$endpoint"}',
    ]
