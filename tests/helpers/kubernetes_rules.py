"""What a Kubernetes API server checks of names and labels, and how it matches label selectors.

The rules are those of k8s.io/apimachinery's validation (IsDNS1123Label, IsDNS1035Label,
IsDNS1123Subdomain, IsQualifiedName, IsValidLabelValue, IsValidPortName), so that a manifest
refused by a real cluster for a name is refused here, without one.
"""

import re
from collections.abc import Iterator

DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_1123_SUBDOMAIN = re.compile(rf"{DNS_1123_LABEL.pattern}(\.{DNS_1123_LABEL.pattern})*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")

# How each kind's name is checked. Services are DNS-1035 labels; a Job's name becomes its
# pods' `job-name` label; a Deployment's pods take their hostnames from it (Kubernetes'
# documentation: "for best compatibility, the name should follow ... a DNS label").
NAME_RULES = {
    "Service": "dns-1035-label",
    "Namespace": "dns-1123-label",
    "Job": "dns-1123-label",
    "Deployment": "dns-1123-label",
}
# The labels the control plane puts on the pods of a kind, from the object's name.
LABELS_FROM_NAME = {"Job": ("job-name", "batch.kubernetes.io/job-name")}


def name_problem(name: str, rule: str) -> str | None:
    """Why a cluster refuses this name under this rule, or None."""
    pattern, limit = {
        "dns-1123-label": (DNS_1123_LABEL, 63),
        "dns-1035-label": (DNS_1035_LABEL, 63),
        "dns-1123-subdomain": (DNS_1123_SUBDOMAIN, 253),
    }[rule]
    if len(name) > limit:
        return f"{name!r} is {len(name)} characters, over the {rule} limit of {limit}"
    if not pattern.fullmatch(name):
        return f"{name!r} is not a {rule}"
    return None


def label_problem(key: str, value: str) -> str | None:
    """Why a cluster refuses this label (or selector term), or None."""
    prefix, _, name = key.rpartition("/")
    if prefix and name_problem(prefix, "dns-1123-subdomain"):
        return f"label key {key!r}: {name_problem(prefix, 'dns-1123-subdomain')}"
    if len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
        return f"label key {key!r} is not a qualified name of at most 63 characters"
    if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        return f"label {key}={value!r} ({len(value)} characters) is not a valid label value"
    return None


def port_name_problem(name: str) -> str | None:
    """Why a cluster refuses this port name (an IANA service name), or None."""
    if len(name) > 15 or not PORT_NAME.fullmatch(name) or "--" in name:
        return f"port name {name!r} is not an IANA service name of at most 15 characters"
    if not re.search("[a-z]", name):
        return f"port name {name!r} has no letter"
    return None


def labels_in(tree: object) -> Iterator[tuple[str, str]]:
    """Every label and selector term anywhere in a resource: labels and matchLabels maps."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                yield from value.items()
            else:
                yield from labels_in(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from labels_in(item)


def resource_problems(resource: dict) -> list[str]:
    """Every name, label and port name in one resource that a cluster would refuse."""
    kind, metadata = resource["kind"], resource["metadata"]
    where = f"{kind} {metadata['name']}"
    problems = [name_problem(metadata["name"], NAME_RULES.get(kind, "dns-1123-subdomain"))]
    if "namespace" in metadata:
        problems.append(name_problem(metadata["namespace"], "dns-1123-label"))
    labels = list(labels_in(resource))
    labels += [(key, metadata["name"]) for key in LABELS_FROM_NAME.get(kind, ())]
    problems += [label_problem(key, value) for key, value in labels]
    pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []):
        problems.append(name_problem(container["name"], "dns-1123-label"))
        ports = [port["name"] for port in container.get("ports", []) if "name" in port]
        problems += map(port_name_problem, ports)
    volumes = [volume["name"] for volume in pod.get("volumes", [])]
    problems += [name_problem(volume, "dns-1123-label") for volume in volumes]
    return [f"{where}: {problem}" for problem in problems if problem]


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Whether a label selector as kubectl's `-l` takes it matches these labels.

    The forms a README uses: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`;
    terms separated by commas outside parentheses, all of which must match.
    """
    terms = re.findall(r"[^,(]+(?:\([^)]*\))?", selector)
    for term in (t.strip() for t in terms):
        if match := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, operator, values = match.groups()
            inside = labels.get(key) in {v.strip() for v in values.split(",")}
            if inside != (operator == "in"):
                return False
        elif match := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)", term):
            key, operator, value = match.groups()
            if (labels.get(key) == value) != (operator != "!="):
                return False
        elif match := re.fullmatch(r"(!?)([\w./-]+)", term):
            if (match.group(2) in labels) == bool(match.group(1)):
                return False
        else:
            raise ValueError(f"a selector term this reader does not know: {term!r}")
    return True
