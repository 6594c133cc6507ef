"""The dashboard and the alert rules in deploy/ name only metrics that /metrics of the
running service exports: they cannot drift from the code unnoticed. With Debian's
``promtool`` installed, the rule file is checked by Prometheus itself too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "rempart-dashboard.json"
RULES = DEPLOY / "prometheus" / "rempart-alerts.yml"
METRIC = re.compile(r"\brempart_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def _rule_expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def _exported(client: TestClient) -> set[str]:
    """Every series name /metrics can show, even of a metric with no sample yet."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    names = set()
    for family in text_string_to_metric_families(answer.text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_dashboard_and_the_rules_name_exported_metrics(client: TestClient) -> None:
    exported = _exported(client)
    named = {
        where: {m for e in expressions for m in METRIC.findall(e)}
        for where, expressions in (
            ("dashboard", _dashboard_expressions()),
            ("rules", _rule_expressions()),
        )
    }
    for where, metrics in named.items():
        assert metrics, f"the {where} names no rempart metric"
        assert metrics <= exported, (where, sorted(metrics - exported))
    # The brief's panels and alerts are there.
    everything = " ".join(_dashboard_expressions() + _rule_expressions())
    for needed in (
        "rempart_lookups_total",
        "rempart_guard_decisions_total",
        "rempart_audit_append_seconds_bucket",
        "rempart_http_request_duration_seconds_bucket",
        "rempart_http_requests_total",
        "rempart_outbox_depth",
        "rempart_campaign_queue_depth",
        "rempart_claims_lag_seconds",
        "rempart_ready",
    ):
        assert needed in everything, needed


def test_the_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"], panel["title"]


def test_every_alert_is_named_and_explained() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names))
    for rule in alerts:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_rules_and_the_scrape_example(tmp_path: Path) -> None:
    rules = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The scrape example names a token file and the rules beside it: both given here.
    config = tmp_path / "prometheus.yml"
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    token = tmp_path / "token"
    token.write_text("t" * 40, encoding="utf-8")
    config.write_text(text.replace("/run/secrets/rempart_metrics_token", str(token)))
    shutil.copy(RULES, tmp_path / RULES.name)
    checked = subprocess.run(
        [str(PROMTOOL), "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
