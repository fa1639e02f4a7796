"""Checks the Helm chart without a cluster: lint it with the real Helm
engine (helm-python-sdk), render the default and a production-like values
file, validate every manifest against the Kubernetes schemas
(kubernetes-validate), and make sure bad values fail at install time."""

import pathlib
import sys

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "authmux"
KUBE_VERSION = "1.30.0"
# CRDs of other projects, which the Kubernetes schemas don't know.
FOREIGN_GROUPS = ("monitoring.coreos.com/",)


def fail(message):
    print(f"helm check: FAILED: {message}")
    sys.exit(1)


def check(name, values):
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    if problems or report.get("errors"):
        fail(f"lint of {name}: {problems or report['errors']}")
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(values)
    manifests = chart.render(values, name="authmux", namespace="auth", is_install=True)
    count = 0
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if doc.get("apiVersion", "").startswith(FOREIGN_GROUPS):
                continue
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            except Exception as e:  # noqa: BLE001 - report any validation failure
                first = str(e).splitlines()[0]
                fail(f"{name}: {path} ({doc.get('kind')}): {first}")
            count += 1
    print(f"helm check: {name}: lint clean, {count} manifests valid")
    return manifests


def main():
    defaults = check("default values", None)
    prod_values = yaml.safe_load((ROOT / "ci" / "production-values.yaml").read_text())
    prod = check("production values", prod_values)
    if not any("HorizontalPodAutoscaler" in t for t in prod.values()):
        fail("production values render no HorizontalPodAutoscaler")
    if any("HorizontalPodAutoscaler" in t for t in defaults.values()):
        fail("default values render an HorizontalPodAutoscaler")
    chart = helm.Chart.load(str(CHART))
    for bad in ({"replicaCount": "two"}, {"config": {"signingAlg": "HS256"}}, {"service": {"port": 70000}}):
        try:
            chart.validate_schema(bad)
        except helm.HelmError:
            continue
        fail(f"values {bad} were accepted")
    print("helm check: bad values are refused")


if __name__ == "__main__":
    main()
