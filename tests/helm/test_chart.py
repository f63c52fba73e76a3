"""The Helm chart, rendered offline by the real Helm engine, checked strictly.

Every scenario (the defaults and each file of ci/) is validated against Kubernetes'
schemas in strict mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

CHART = Path(__file__).parents[2] / "helm" / "oomwatch"
SCENARIOS = ["default", *sorted(p.stem for p in (CHART / "ci").glob("*.yaml"))]
KUBE_VERSION = "1.30.0"
CRDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def values_of(scenario: str) -> dict[str, Any]:
    """The values of a scenario (the chart's defaults for `default`)."""
    if scenario == "default":
        return {}
    return dict(yaml.safe_load((CHART / "ci" / f"{scenario}.yaml").read_text()) or {})


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders with these values."""
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="oomwatch", namespace="monitoring")
    objects = []
    for path, text in manifests.items():
        if path.endswith(".txt"):
            continue
        objects += [d for d in yaml.safe_load_all(text) if d]
    return objects


def daemonset(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The one DaemonSet."""
    (ds,) = [o for o in objects if o["kind"] == "DaemonSet"]
    return ds


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_is_valid_kubernetes(scenario: str) -> None:
    """Each rendered object passes Kubernetes' strict schema (CRDs aside)."""
    objects = render(values_of(scenario))
    assert {o["kind"] for o in objects} >= {
        "DaemonSet",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Service",
    }
    for obj in objects:
        if obj["kind"] in CRDS:
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_security_posture(scenario: str) -> None:
    """Only kmsg is privileged; otherwise no privilege, no capability; a read-only root."""
    values = values_of(scenario)
    pod = daemonset(render(values))["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == 0  # the state hostPath is root's; the image's user is 10001
    if values.get("source", "kmsg") == "kmsg":
        assert sc["privileged"] is True
        assert any(v["hostPath"]["path"] == "/dev/kmsg" for v in pod["volumes"] if "hostPath" in v)
    else:
        assert sc["privileged"] is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not any(v.get("hostPath", {}).get("path") == "/dev/kmsg" for v in pod["volumes"])
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/host/proc"]["readOnly"] is True
    assert mounts["/host/sys"]["readOnly"] is True
    assert pod["hostPID"] is True


def test_daemonset_habits() -> None:
    """Every node (taints tolerated), node-critical, no CPU limit, node name, probes."""
    ds = daemonset(render({}))
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["priorityClassName"] == "system-node-critical"
    effects = {(t["operator"], t["effect"]) for t in pod["tolerations"]}
    assert effects == {("Exists", "NoSchedule"), ("Exists", "NoExecute")}
    # a memory limit equal to the request, no CPU limit: a storm of kills is not throttled
    assert c["resources"]["limits"] == {"memory": c["resources"]["requests"]["memory"]}
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["OOMWATCH_HOSTNAME"]["value"] == "$(NODE_NAME)"
    assert env["OOMWATCH_PROC_ROOT"]["value"] == "/host/proc"
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    assert state["hostPath"]["path"] == "/var/lib/oomwatch"


def test_config_checksum_rolls_the_pods() -> None:
    """A config change changes the pod template's checksum annotation."""

    def checksum(values: dict[str, Any]) -> str:
        ds = daemonset(render(values))
        return str(ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum(
        {"config": {"receivers": [{"name": "a", "alertmanager": {"url": "http://am:9093"}}]}}
    )


def test_credentials_become_file_settings() -> None:
    """Each credential key is mounted and named by its *_FILE variable; never in env."""
    objects = render(values_of("monitors-secret-values"))
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert set(secret["stringData"]) == {"slack-bot-token", "pagerduty-routing-key"}
    (c,) = daemonset(objects)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["OOMWATCH_SLACK_BOT_TOKEN_FILE"] == "/etc/oomwatch/secrets/slack-bot-token"
    assert env["OOMWATCH_PAGERDUTY_ROUTING_KEY_FILE"] == (
        "/etc/oomwatch/secrets/pagerduty-routing-key"
    )
    assert "xoxb-from-values" not in yaml.safe_dump(daemonset(objects))
    existing = daemonset(render(values_of("existing-secret-values")))
    vols = existing["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("secret", {}).get("secretName") == "oomwatch-credentials" for v in vols)
    assert not [o for o in render(values_of("existing-secret-values")) if o["kind"] == "Secret"]


def test_rbac_is_least_privilege() -> None:
    """Read pods, create and patch events: nothing more."""
    (role,) = [o for o in render({}) if o["kind"] == "ClusterRole"]
    rules = {(tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]}
    assert rules == {(("pods",), ("get", "list", "watch")), (("events",), ("create", "patch"))}


@pytest.mark.parametrize(
    "bad",
    [
        {"source": "bogus"},
        {"listenPort": 0},
        {"credentials": {"keys": ["aws-secret"]}},
        {"env": {"1-BAD": "/x"}},
        {"env": {"OOMWATCH_X": {"value": "y"}}},
        {"image": {"repository": "r", "digest": "latest"}},
        {"updateStrategy": {"type": "Sometimes"}},
        {"nonsense": True},
    ],
)
def test_schema_rejects_bad_values(bad: dict[str, Any]) -> None:
    """values.schema.json refuses what the chart cannot mean."""
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(bad)


def test_the_values_users_of_node_charts_expect() -> None:
    """Names, registry and digest, security contexts, volumes, strategy, host network, env."""
    values = {
        "fullnameOverride": "oomw",
        "image": {"registry": "mirror.example.com", "digest": "sha256:" + "a" * 64},
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {"runAsUser": 10001},
        "source": "journald",
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
        "updateStrategy": {"type": "OnDelete"},
        "hostNetwork": True,
        "podAnnotations": {"team": "sre"},
        "podLabels": {"tier": "node"},
        "env": {
            "HTTPS_PROXY": "http://proxy:3128",
            "OOMWATCH_LOG_LEVEL": {
                "valueFrom": {"configMapKeyRef": {"name": "extra", "key": "level"}}
            },
        },
    }
    objects = render(values)
    for obj in objects:
        if obj["kind"] not in CRDS:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    ds = daemonset(objects)
    assert ds["metadata"]["name"] == "oomw"
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    tmpl = ds["spec"]["template"]
    assert tmpl["metadata"]["annotations"]["team"] == "sre"
    assert tmpl["metadata"]["labels"]["tier"] == "node"
    pod = tmpl["spec"]
    assert (pod["hostNetwork"], pod["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    (c,) = pod["containers"]
    assert c["image"] == "mirror.example.com/ghcr.io/oomwatch/oomwatch:0.1.0@sha256:" + "a" * 64
    sc = c["securityContext"]
    assert sc["runAsUser"] == 10001  # the user's value over the source's default
    assert sc["capabilities"] == {"drop": ["ALL"]}  # the rest of the defaults stay
    assert {"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True} in c["volumeMounts"]
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
    env = {e["name"]: e for e in c["env"]}
    assert env["HTTPS_PROXY"]["value"] == "http://proxy:3128"
    assert env["OOMWATCH_LOG_LEVEL"]["valueFrom"]["configMapKeyRef"]["key"] == "level"
    named = render({"nameOverride": "agent"})
    assert daemonset(named)["metadata"]["name"] == "oomwatch-agent"
    kmsg = daemonset(render({"securityContext": {"runAsUser": 0}}))
    (kc,) = kmsg["spec"]["template"]["spec"]["containers"]
    assert kc["securityContext"]["privileged"] is True  # kmsg's default kept beside it


def test_lint_finds_no_error() -> None:
    """`helm lint` reports no error (a missing icon is only advice)."""
    report = helm.lint(str(CHART), strict=False)
    assert report["errors"] == []
    assert all(m["severity"] < 3 for m in report["messages"])


def test_the_readme_names_every_value() -> None:
    """Each top-level value of values.yaml is in the chart README's table."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = "\n".join(
        line for line in (CHART / "README.md").read_text().splitlines() if line.startswith("|")
    )
    missing = [k for k in values if f"`{k}" not in table]
    assert missing == []


def test_prometheus_rule_is_the_shipped_rules_file() -> None:
    """prometheusRule.enabled renders the rules file's groups, unchanged; off by default."""
    assert not [o for o in render({}) if o["kind"] == "PrometheusRule"]
    objects = render({"prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}}})
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "oomwatch-rules.yaml").read_text())
    assert "$labels.owner" in str(rule["spec"])  # Prometheus's template text is not Helm's
