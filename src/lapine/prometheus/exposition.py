"""The Prometheus text format (version 0.0.4): # TYPE and # HELP lines, then samples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Labels = Mapping[str, str]


@dataclass
class Family:
    name: str
    kind: str  # "gauge", "counter", "untyped" or "histogram"
    help: str
    # (suffix of the sample's name, labels, value): the suffix is "" but for a histogram's parts.
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append(("", labels, value))
        return self

    def add_histogram(self, bounds: Sequence[str], cumulative: Sequence[int], total: float, **labels: str) -> Family:
        """One histogram's series: a _bucket per bound (the last is "+Inf"), then _sum and _count."""
        for bound, count in zip(bounds, cumulative, strict=True):
            self.samples.append(("_bucket", {**labels, "le": bound}, count))
        self.samples.append(("_sum", labels, total))
        self.samples.append(("_count", labels, cumulative[-1]))
        return self


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# TYPE {family.name} {family.kind}")
        lines.append(f"# HELP {family.name} {family.help}")
        for suffix, labels, value in family.samples:
            lines.append(f"{family.name}{suffix}{_labels(labels)} {number(value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inside = ",".join(f'{key}="{escape(value)}"' for key, value in labels.items())
    return "{" + inside + "}"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
