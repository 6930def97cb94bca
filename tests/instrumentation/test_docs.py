"""The operations guide and the Grafana dashboard name every exported metric."""

from __future__ import annotations

import json
from pathlib import Path

from resilient.instrumentation._catalog import DECISION_SECONDS, METRICS, PREFIX, exported_name

ROOT = Path(__file__).resolve().parent.parent.parent
NAMES = [exported_name(metric) for metric in METRICS] + [PREFIX + DECISION_SECONDS]


def test_the_operations_guide_documents_every_metric() -> None:
    page = (ROOT / "docs" / "operations.md").read_text()
    metrics = page.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    for name in NAMES:
        assert f"| `{name}` |" in metrics, name


def test_the_dashboard_charts_every_metric() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana" / "resilient.json").read_text())
    queries = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    for name in NAMES:
        assert name in queries, name
