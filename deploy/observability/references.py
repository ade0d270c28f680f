"""Which metrics the dashboards and rules use, read by parsing their PromQL.

Every expression of every committed dashboard panel and of every rule is parsed
(``promql-parser``, the Rust parser Prometheus' own grammar is ported to) and
walked down to its vector selectors: each names a metric and the labels it
matches on. :func:`problems` compares them with what the processes export: a
selector's name must be a sample name of the scraped output (``x_bucket``,
``x_count`` and ``x_sum`` of a histogram, ``x_total`` of a counter), or the
output of a recording rule defined in rules.yml, and every label it matches on
must be on those samples (or be one the scrape adds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RULES = HERE / "prometheus" / "rules.yml"
DASHBOARDS = ROOT / "deploy" / "k8s" / "base" / "observability" / "dashboards"

# Labels Prometheus adds to every scraped series (a ServiceMonitor adds the
# Kubernetes ones); a label of the same name in the output becomes exported_<name>.
TARGET_LABELS = frozenset({"job", "instance"})
# Grafana's variables in an expression, replaced by a duration so the text parses.
_GRAFANA_DURATIONS = re.compile(
    r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}"
)


@dataclass(frozen=True)
class Selector:
    where: str
    """The dashboard panel or rule that uses it."""
    metric: str
    labels: frozenset[str]
    """Label names its matchers name."""


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from _walk(child)
    for arg in getattr(node, "args", None) or ():
        yield from _walk(arg)


def selectors(expr: str) -> list[tuple[str, frozenset[str]]]:
    """(metric name, matched label names) of every vector selector in ``expr``."""
    found = []
    tree = promql_parser.parse(_GRAFANA_DURATIONS.sub("5m", expr))
    for node in _walk(tree):
        if not isinstance(node, promql_parser.VectorSelector):
            continue
        matchers = [(m.name, m.op, m.value) for m in node.matchers.matchers]
        name = node.name or next(
            (value for label, op, value in matchers if label == "__name__"), None
        )
        if not name:
            raise ValueError(f"a selector without a metric name in {expr!r}")
        found.append((name, frozenset(label for label, _, _ in matchers if label != "__name__")))
    return found


Matcher = tuple[str, str, str]
"""(label, operator, value): ``=``, ``!=``, ``=~`` or ``!~``."""
_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def selector_matchers(expr: str) -> list[tuple[str, list[Matcher]]]:
    """(metric name, its label matchers) of every vector selector in ``expr``."""
    found = []
    for node in _walk(promql_parser.parse(_GRAFANA_DURATIONS.sub("5m", expr))):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.append(
                (node.name, [(m.name, _OPS[str(m.op)], m.value) for m in node.matchers.matchers])
            )
    return found


def matches(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether a series with ``labels`` is selected (regexes anchored, as in PromQL)."""
    for label, op, value in matchers:
        actual = labels.get(label, "")
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
        if op == "=~" and not re.fullmatch(value, actual):
            return False
        if op == "!~" and re.fullmatch(value, actual):
            return False
    return True


def slo_selectors() -> list[tuple[str, str, list[Matcher]]]:
    """(rule, metric, matchers) of the gateway's SLO recording rules."""
    (group,) = (g for g in rule_groups() if g["name"] == "gateway-slo.rules")
    return [
        (rule["record"], metric, found)
        for rule in group["rules"]
        for metric, found in selector_matchers(str(rule["expr"]))
    ]


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return groups


def rules() -> Iterator[dict[str, Any]]:
    for group in rule_groups():
        yield from group["rules"]


def recorded() -> set[str]:
    """Names of the series the recording rules write."""
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard_expressions(directory: Path = DASHBOARDS) -> Iterator[tuple[str, str]]:
    """(dashboard / panel, expression) of every query of the committed dashboards."""
    for path in sorted(directory.glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        for panel in model.get("panels", []):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    yield f"dashboard {path.stem} / {panel['title']}", target["expr"]


def rule_expressions() -> Iterator[tuple[str, str]]:
    for rule in rules():
        name = rule.get("alert") or rule.get("record")
        yield f"rule {name}", str(rule["expr"])


def references() -> list[Selector]:
    """Every selector of every dashboard panel and rule."""
    return [
        Selector(where, metric, labels)
        for where, expr in [*dashboard_expressions(), *rule_expressions()]
        for metric, labels in selectors(expr)
    ]


def scraped_labels(label_names: Iterable[str]) -> set[str]:
    """Label names a sample has once scraped: its own, renamed where the scrape's clash."""
    own = {f"exported_{n}" if n in TARGET_LABELS else n for n in label_names}
    return own | TARGET_LABELS


def problems(exported: Mapping[str, set[str]]) -> list[str]:
    """What the dashboards and rules use that is not there.

    ``exported`` maps each sample name of the scraped output to the label names
    its samples carry (before the scrape's renaming).
    """
    found = []
    records = recorded()
    for ref in references():
        if ref.metric in records:
            continue
        if ":" in ref.metric:
            found.append(f"{ref.where}: {ref.metric} is no recording rule's output")
            continue
        if ref.metric not in exported:
            found.append(f"{ref.where}: {ref.metric} is not exported")
            continue
        unknown = ref.labels - scraped_labels(exported[ref.metric])
        if unknown:
            found.append(
                f"{ref.where}: {ref.metric} has no label {', '.join(sorted(unknown))} "
                f"(it has {', '.join(sorted(scraped_labels(exported[ref.metric])))})"
            )
    return sorted(set(found))
