"""`deploy: kubernetes`: manifests a real cluster accepts, that run the Procfile's processes.

No cluster runs here (no container engine, no image registry), so the manifests are checked
offline for what an API server and its controllers check: the schemas (strictly), every name
and label at the longest slug the template accepts, the references kustomize rewrites. And
they are checked against the rendered service itself: the settings they give start it, their
probe paths answer within the probes' timeouts, their example secrets are refused, and the
example `kubectl create secret` command runs.
"""

import base64
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from helpers.artifacts import by_component, env_example_names, kustomize_build, pod_spec
from helpers.commands import assert_succeeds
from helpers.kubernetes_rules import resource_problems, selector_matches
from helpers.matrix import IDENTITY
from helpers.processes import app_env, procfile, run_one_off, running_web
from helpers.servers import free_port

KUBERNETES = Path("deploy/kubernetes")
OVERLAY = KUBERNETES / "overlays/example"
SLUG = IDENTITY["project_slug"]
# What a pod's stop needs on top of the service's drain: the web pods' preStop sleep.
PRE_STOP_SECONDS = 5
# The longest slug copier.yml accepts: every object is SLUG plus a suffix of at most 8
# characters (-release), and a Job's name is a label value of at most 63.
LONGEST_SLUG = "very-long-service-name-very-long-service-name-very-long"
# The contract: /healthz answers within 1 s whatever the clients or the backing services do
# (tests/test_faults_backing_services.py holds the service to it).
HEALTHZ_SECONDS = 1
DNS = {(53, "UDP"), (53, "TCP")}
# The manifests vary with every answer but the Python version, which `file_combination` holds
# at its default.
MANIFESTS_VARY = {"deploy": "kubernetes"}
# The backing services' URL variables; the processes that connect to each.
BACKING_SERVICES = {"DATABASE_URL": {"web", "worker", "release"}, "REDIS_URL": {"web", "worker"}}


@pytest.fixture
def rendered(file_combination: dict[str, str], render) -> Path:
    return render(file_combination)


@pytest.fixture
def base(rendered: Path) -> list[dict]:
    return kustomize_build(rendered / KUBERNETES / "base")


@pytest.fixture
def overlay(rendered: Path) -> list[dict]:
    return kustomize_build(rendered / OVERLAY)


def config_map(resources: list[dict]) -> dict[str, str]:
    (config,) = [r for r in resources if r["kind"] == "ConfigMap"]
    return config["data"]


def config_map_name(resources: list[dict]) -> str:
    (config,) = [r for r in resources if r["kind"] == "ConfigMap"]
    return config["metadata"]["name"]


def workloads(resources: list[dict]) -> list[dict]:
    return [r for r in resources if r["kind"] in ("Deployment", "Job")]


def config_maps_referenced(resources: list[dict]) -> set[str]:
    """The ConfigMaps every container of every workload reads its settings from."""
    return {
        source["configMapRef"]["name"]
        for workload in workloads(resources)
        for container in pod_spec(workload)["containers"]
        for source in container["envFrom"]
        if "configMapRef" in source
    }


def example_secret(project: Path) -> dict[str, str]:
    """The example Secret's keys and placeholders; none where the service needs no secret."""
    example = project / KUBERNETES / "base/secret.example.yaml"
    return yaml.safe_load(example.read_text())["stringData"] if example.exists() else {}


@pytest.mark.combinations(deploy="kubernetes")
def test_every_manifest_and_the_built_overlay_validate_against_the_schemas(
    rendered: Path, overlay: list[dict], tmp_path: Path
) -> None:
    manifests = [
        path for path in (rendered / KUBERNETES).rglob("*.yaml")
        if path.name != "kustomization.yaml"
    ]  # fmt: skip
    built = tmp_path / "overlay.yaml"
    built.write_text(yaml.safe_dump_all(overlay))
    # Strict: a misspelt or misplaced field is an error, not something a cluster ignores.
    assert_succeeds(
        ["kubernetes-validate", "--strict", "--quiet", *map(str, manifests), str(built)], rendered
    )


@pytest.mark.combinations(deploy="kubernetes")
def test_the_example_overlay_sets_namespace_and_image_on_everything(
    rendered: Path, overlay: list[dict]
) -> None:
    assert {r["metadata"].get("namespace") for r in overlay} == {SLUG}
    (image,) = yaml.safe_load((rendered / OVERLAY / "kustomization.yaml").read_text())["images"]
    assert image["name"] == SLUG and "/" in image["newName"], "the base's image is not replaced"
    images = {c["image"] for r in workloads(overlay) for c in pod_spec(r)["containers"]}
    assert images == {f"{image['newName']}:{image['newTag']}"}


@pytest.mark.combinations(deploy="kubernetes")
def test_one_workload_per_procfile_process_running_its_command(rendered: Path, base) -> None:
    processes = procfile(rendered)
    long_running = {name for name in processes if name != "release"}
    deployments, jobs = by_component(base, "Deployment"), by_component(base, "Job")
    assert set(deployments) == long_running
    assert set(jobs) == {"release"} & set(processes)
    for name, workload in {**deployments, **jobs}.items():
        (container,) = pod_spec(workload)["containers"]
        assert container["command"] == processes[name], name
    (hpa,) = [r for r in base if r["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployments["web"]["metadata"]["name"]
    assert "replicas" not in deployments["web"]["spec"], "replicas would fight the autoscaler"


@pytest.mark.combinations(deploy="kubernetes")
def test_web_serves_on_port_probes_health_and_outlasts_its_drain(base: list[dict]) -> None:
    web = by_component(base, "Deployment")["web"]
    (container,) = pod_spec(web)["containers"]
    (port,) = container["ports"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert port["containerPort"] == int(env["PORT"])
    (service,) = [r for r in base if r["kind"] == "Service"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": port["name"]}
    drain = int(config_map(base)["SHUTDOWN_GRACE_SECONDS"])
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRE_STOP_SECONDS)]
    assert pod_spec(web)["terminationGracePeriodSeconds"] > PRE_STOP_SECONDS + drain
    for name, workload in by_component(base, "Deployment").items():
        assert pod_spec(workload)["terminationGracePeriodSeconds"] > drain, name


@pytest.mark.combinations(deploy="kubernetes")
def test_pods_run_as_non_root_on_a_read_only_root_with_limits(base: list[dict]) -> None:
    for workload in [r for r in base if r["kind"] in ("Deployment", "Job")]:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])


@pytest.mark.combinations(deploy="kubernetes")
def test_every_variable_the_manifests_set_is_one_the_settings_read(rendered, base) -> None:
    named = set(config_map(base)) | set(example_secret(rendered))
    for workload in workloads(base):
        for container in pod_spec(workload)["containers"]:
            named |= {item["name"] for item in container.get("env", [])}
            sources = sorted((kind, ref["name"]) for source in container["envFrom"]
                             for kind, ref in source.items())  # fmt: skip
            secret = [("secretRef", f"{SLUG}-secrets")] if example_secret(rendered) else []
            assert sources == [("configMapRef", config_map_name(base)), *secret]
    assert named - env_example_names(rendered) == set()
    assert "SECRET_KEY" not in config_map(base), "a secret in the ConfigMap"


# Names and labels: what the API server refuses, at the longest slug.


def test_the_longest_slug_is_the_longest_the_template_accepts(render) -> None:
    render({"project_slug": LONGEST_SLUG, "deploy": "kubernetes"})
    with pytest.raises(Exception, match="at most"):
        render({"project_slug": LONGEST_SLUG + "x", "deploy": "kubernetes"})


@pytest.mark.parametrize("worker", ["none", "celery"])
@pytest.mark.parametrize("database", ["none", "postgresql"])
def test_every_name_and_label_fits_a_cluster_at_the_longest_slug(
    render, database: str, worker: str
) -> None:
    answers = {"project_slug": LONGEST_SLUG, "database": database, "worker": worker}
    rendered = render({**answers, "deploy": "kubernetes"})
    built = kustomize_build(rendered / OVERLAY)
    assert {r["metadata"]["namespace"] for r in built} == {LONGEST_SLUG}
    problems = [problem for resource in built for problem in resource_problems(resource)]
    assert problems == []
    # The generated ConfigMap's hash suffix takes it past 63: allowed, as it is no label.
    assert config_map_name(built).startswith(f"{LONGEST_SLUG}-config-")


def test_the_name_rules_refuse_what_a_cluster_refuses() -> None:
    job = {"kind": "Job", "metadata": {"name": "a" * 64}, "spec": {}}
    assert any("over the dns-1123-label limit" in p for p in resource_problems(job))
    service = {"kind": "Service", "metadata": {"name": "9-web"}}
    assert resource_problems(service) == ["Service 9-web: '9-web' is not a dns-1035-label"]
    labelled = {"kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "b" * 64}}}
    assert len(resource_problems(labelled)) == 1


# Settings: a change rolls the pods.


# Once in the default tier: on the combination with every workload (tiers.py).
@pytest.mark.once
@pytest.mark.combinations(**MANIFESTS_VARY)
def test_a_changed_setting_renames_the_config_map_every_workload_reads(
    rendered: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "kubernetes"
    shutil.copytree(rendered / KUBERNETES, tree)
    builds = [kustomize_build(tree / "overlays/example")]
    for path, old, new in (
        ("base/settings.env", "LOG_FORMAT=json", "LOG_FORMAT=console"),
        ("overlays/example/kustomization.yaml", "LOG_LEVEL=WARNING", "LOG_LEVEL=ERROR"),
    ):
        text = (tree / path).read_text()
        assert text.count(old) == 1, f"{old} not in {path}"
        (tree / path).write_text(text.replace(old, new))
        builds.append(kustomize_build(tree / "overlays/example"))
    names = [config_map_name(build) for build in builds]
    assert len(set(names)) == len(names), "a changed setting kept the ConfigMap's name"
    for build, name in zip(builds, names, strict=True):
        assert config_maps_referenced(build) == {name}
    assert config_map(builds[-1])["LOG_FORMAT"] == "console"
    assert config_map(builds[-1])["LOG_LEVEL"] == "ERROR"


@pytest.mark.combinations(**MANIFESTS_VARY)
def test_the_overlay_merges_its_settings_into_the_bases(base, overlay) -> None:
    assert config_map(overlay) == {**config_map(base), "LOG_LEVEL": "WARNING"}
    assert config_map(base)["LOG_LEVEL"] != "WARNING"
    (config,) = [r for r in overlay if r["kind"] == "ConfigMap"]
    assert config["metadata"]["labels"]["app.kubernetes.io/component"] == "config"


# Availability: disruption budgets, probes, spread.


@pytest.mark.combinations(**MANIFESTS_VARY)
def test_a_disruption_budget_lets_drains_through_one_pod_at_a_time(base: list[dict]) -> None:
    deployments = by_component(base, "Deployment")
    budgets = by_component(base, "PodDisruptionBudget")
    assert set(budgets) == set(deployments)
    for name, budget in budgets.items():
        assert budget["spec"]["selector"] == deployments[name]["spec"]["selector"], name
        # One at a time, and never none: a budget that allows no eviction blocks every drain.
        assert budget["spec"]["maxUnavailable"] == 1, name
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name
    (hpa,) = [r for r in base if r["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["minReplicas"] - budgets["web"]["spec"]["maxUnavailable"] >= 1


@pytest.mark.combinations(**MANIFESTS_VARY)
def test_probes_wait_longer_than_the_service_takes_to_answer(rendered, base) -> None:
    (edge,) = rendered.glob("src/*/edge.py")
    # /readyz's own bound on its backing services' checks (their connects time out later).
    readiness_seconds = float(re.search(r"^PROBE_SECONDS = ([\d.]+)$", edge.read_text(), re.M)[1])
    (container,) = pod_spec(by_component(base, "Deployment")["web"])["containers"]
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    # The kubelet hears /readyz's 503 rather than timing out; a slow but live pod is not
    # restarted.
    assert readiness["httpGet"]["path"] == "/readyz", "readiness is not /readyz, bound above"
    assert liveness["httpGet"]["path"] == "/healthz", "liveness is not /healthz, bound in 1 s"
    assert readiness["timeoutSeconds"] > readiness_seconds
    assert liveness["timeoutSeconds"] > HEALTHZ_SECONDS
    # A restart only after several misses: one slow answer under load is not a hung process.
    assert liveness["failureThreshold"] >= 3
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30


@pytest.mark.combinations(**MANIFESTS_VARY)
def test_pods_spread_over_nodes_and_still_schedule_on_one(base: list[dict]) -> None:
    for name, deployment in by_component(base, "Deployment").items():
        (spread,) = pod_spec(deployment)["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname", name
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway", name
        assert spread["maxSkew"] == 1, name
        assert spread["labelSelector"] == deployment["spec"]["selector"], name


# Network: who may reach whom.


def backing_ports(project: Path) -> dict[str, int]:
    """Each backing service's URL variable and its port, as .env.example gives it."""
    lines = (project / ".env.example").read_text().splitlines()
    urls = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name: urlsplit(urls[name]).port for name in BACKING_SERVICES if name in urls}


def selects(policy: dict, pod_labels: dict[str, str]) -> bool:
    return policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


def egress_ports(policy: dict) -> set[tuple[int, str]]:
    rules = policy["spec"]["egress"]
    assert all(rule.get("ports") for rule in rules), "an egress rule without ports allows all"
    return {(port["port"], port["protocol"]) for rule in rules for port in rule["ports"]}


@pytest.mark.combinations(**MANIFESTS_VARY)
def test_network_policies_let_in_only_the_served_ports_and_out_only_dns_and_backing_services(
    rendered: Path, base: list[dict]
) -> None:
    ports = backing_ports(rendered)
    policies = [r for r in base if r["kind"] == "NetworkPolicy"]
    for workload in workloads(base):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        (policy,) = [p for p in policies if selects(p, pod_labels)]
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"], component
        (container,) = pod_spec(workload)["containers"]
        served = [{"port": p["name"], "protocol": "TCP"} for p in container.get("ports", [])]
        # Web serves requests (and /metrics), the worker its metrics; the release nothing.
        assert bool(served) == (component in ("web", "worker")), component
        if served:
            assert policy["spec"]["ingress"] == [{"ports": served}], component
        else:  # Ingress among the types, and no rule: nothing reaches it.
            assert "ingress" not in policy["spec"], component
        wanted = {(port, "TCP") for name, port in ports.items()
                  if component in BACKING_SERVICES[name]}  # fmt: skip
        assert egress_ports(policy) == DNS | wanted, component


@pytest.mark.combinations(**MANIFESTS_VARY)
def test_prometheus_annotations_name_the_port_each_process_serves_its_metrics_on(
    base: list[dict],
) -> None:
    """The pod annotations Prometheus's pod discovery reads: on the port the process is told to
    serve /metrics on (PORT for web, WORKER_METRICS_PORT for the worker), which the pod declares."""
    variable = {"web": "PORT", "worker": "WORKER_METRICS_PORT"}
    for workload in workloads(base):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if component not in variable:
            assert "prometheus.io/scrape" not in annotations, component
            continue
        (container,) = pod_spec(workload)["containers"]
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        declared = {str(port["containerPort"]) for port in container["ports"]}
        assert annotations["prometheus.io/scrape"] == "true", component
        assert annotations["prometheus.io/path"] == "/metrics", component
        assert annotations["prometheus.io/port"] == env[variable[component]], component
        assert annotations["prometheus.io/port"] in declared, component


# Release and secrets: the README's and the example's commands.


def readme_kubernetes_commands(project: Path) -> list[list[str]]:
    """The kubectl commands of the README's Kubernetes section, each split as a shell would."""
    block = readme_kubernetes_block(project)
    return [shlex.split(line, comments=True) for line in block.splitlines()
            if line.startswith("kubectl ")]  # fmt: skip


def readme_kubernetes_block(project: Path) -> str:
    """The shell block of the README's Kubernetes section, its continuations joined."""
    readme = (project / "README.md").read_text()
    section = readme[readme.index("## Deploy to Kubernetes") :]
    (block,) = re.findall(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    return block.replace("\\\n", " ")


@pytest.mark.combinations(
    deploy="kubernetes", database="none", worker="none", web_framework="fastapi"
)
def test_the_readmes_image_step_names_the_commit_ci_pushed(
    file_combination: dict[str, str], rendered: Path, tmp_path: Path
) -> None:
    """With CI, the README's step 1 (a `sed` of the overlay), run as written in a committed
    project, makes the overlay roll out the image CI pushed for that commit."""
    if file_combination["ci"] == "none":
        assert "sed -i" not in readme_kubernetes_block(rendered)
        return
    project = shutil.copytree(rendered, tmp_path / "project")
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "r"]):
        assert_succeeds(command, project)
    commit = assert_succeeds(["git", "rev-parse", "HEAD"], project).stdout.strip()
    (step,) = [line for line in readme_kubernetes_block(project).splitlines()
               if line.startswith("sed ")]  # fmt: skip
    assert_succeeds(["bash", "-e", "-c", step], project)
    (image,) = yaml.safe_load((project / OVERLAY / "kustomization.yaml").read_text())["images"]
    built = kustomize_build(project / OVERLAY)
    images = {c["image"] for r in workloads(built) for c in pod_spec(r)["containers"]}
    assert images == {f"{image['newName']}:{commit}"}, images


def object_names(resources: list[dict], selector: str = "") -> set[str]:
    """KIND/NAME of the resources a label selector (kubectl's `-l`) picks."""
    return {
        f"{r['kind']}/{r['metadata']['name']}"
        for r in resources
        if selector_matches(selector, r["metadata"].get("labels", {}))
    }


@pytest.mark.combinations(**MANIFESTS_VARY, database="postgresql")
def test_the_readme_completes_the_release_before_the_new_pods_start(
    rendered: Path, overlay: list[dict]
) -> None:
    (job,) = [r for r in overlay if r["kind"] == "Job"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0, "a finished Job is never cleaned up"
    steps = []  # ("apply", names applied), ("wait", job) or ("delete", job), in order
    for command in readme_kubernetes_commands(rendered):
        if "apply" in command:
            selector = command[command.index("-l") + 1] if "-l" in command else ""
            steps.append(("apply", object_names(overlay, selector)))
        elif "wait" in command:
            assert "--for=condition=complete" in command
            steps.append(("wait", {next(a for a in command if a.startswith("job/"))}))
        elif "delete" in command and "job" in command:
            steps.append(("delete", {f"Job/{command[command.index('job') + 1]}"}))
    job_name = f"Job/{job['metadata']['name']}"
    web = f"Deployment/{by_component(overlay, 'Deployment')['web']['metadata']['name']}"
    config = f"ConfigMap/{config_map_name(overlay)}"
    kinds = [kind for kind, _ in steps]
    assert ("wait", {f"job/{job['metadata']['name']}"}) in steps, steps
    waited = steps.index(("wait", {f"job/{job['metadata']['name']}"}))
    applied_before = set().union(*(names for kind, names in steps[:waited] if kind == "apply"))
    applied_after = set().union(*(names for kind, names in steps[waited:] if kind == "apply"))
    assert {job_name, config} <= applied_before, "the Job runs before its settings, or not at all"
    assert web not in applied_before, "the new web pods start before the release completes"
    # The Job's old run is deleted first (its pod template cannot change), and it is not applied
    # again after: once its TTL has removed it, that would run the release a second time.
    assert kinds.index("delete") < kinds.index("apply")
    assert job_name not in applied_after
    assert applied_before | applied_after == object_names(overlay), "an object is never applied"


def secret_command(example: Path) -> str:
    """The example's `kubectl create secret` command: its comment lines, `# ` taken off."""
    lines = example.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "kubectl create secret" in line)
    command = []
    for line in lines[start:]:
        assert line.startswith("#"), f"the command runs on past its comment: {line!r}"
        command.append(line[1:])
        if not line.endswith("\\"):
            return "\n".join(command)
    raise AssertionError("the command's last line ends in a continuation")


def made_secret(example: Path, tmp_path: Path) -> dict:
    """The Secret the example's command makes, run by the real kubectl, client-side only: no
    cluster, no kubeconfig."""
    assert shutil.which("kubectl"), "kubectl is not on PATH: `uv sync` installs it"
    result = subprocess.run(
        ["bash", "-c", secret_command(example) + " --dry-run=client -o yaml"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "no-kubeconfig")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def secret_values(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


@pytest.mark.combinations(**MANIFESTS_VARY)
def test_the_example_secret_command_makes_the_secret_the_workloads_read(
    rendered: Path, overlay: list[dict], tmp_path: Path
) -> None:
    example = rendered / KUBERNETES / "base/secret.example.yaml"
    refs = {source["secretRef"]["name"] for workload in workloads(overlay)
            for container in pod_spec(workload)["containers"]
            for source in container["envFrom"] if "secretRef" in source}  # fmt: skip
    if not example.exists():
        assert refs == set(), "a workload reads a Secret the example does not show"
        return
    secret = made_secret(example, tmp_path)
    assert secret["kind"] == "Secret"
    assert {secret["metadata"]["name"]} == refs
    assert {secret["metadata"]["namespace"]} == {r["metadata"]["namespace"] for r in overlay}
    values = secret_values(secret)
    assert set(values) == set(example_secret(rendered))
    if "SECRET_KEY" in values:  # made by the command, not a placeholder
        assert len(values["SECRET_KEY"]) >= 32 and values["SECRET_KEY"] != "change-me"


def kubernetes_render(code_combination: dict[str, str], render) -> Path:
    return render({**code_combination, "deploy": "kubernetes"})


@pytest.mark.pairwise
def test_the_manifests_settings_start_the_service_and_its_probes_answer(
    code_combination, project: Path, render, service_env
) -> None:
    base = kustomize_build(kubernetes_render(code_combination, render) / KUBERNETES / "base")
    (container,) = pod_spec(by_component(base, "Deployment")["web"])["containers"]
    # The ConfigMap's settings, real secrets; PORT is the harness's free port, as the Procfile
    # binding on $PORT is shown elsewhere.
    with running_web(project, app_env(project, service_env, **config_map(base))) as web:
        live = web.get(container["livenessProbe"]["httpGet"]["path"])
        ready = web.get(container["readinessProbe"]["httpGet"]["path"])
    # Each its own answer: liveness the process alone, readiness with its backing services'
    # checks (a readiness probe on liveness's path would keep a pod in service without them).
    assert live == (200, {"status": "ok"}), f"livenessProbe: {live}"
    assert ready[0] == 200 and isinstance(ready[1], dict), f"readinessProbe: {ready}"
    assert "checks" in ready[1], f"readinessProbe: {ready} checks no backing service"


@pytest.mark.pairwise
@pytest.mark.combinations(web_framework="django", database="postgresql")
def test_djangos_deploy_checks_find_nothing_with_the_manifests_settings(
    code_combination, project: Path, render, service_env, tmp_path: Path
) -> None:
    """`manage check --deploy --fail-level WARNING`, with the overlay's ConfigMap, the Secret the
    example's command makes (its SECRET_KEY generated) and real backing services."""
    rendered = kubernetes_render(code_combination, render)
    overlay = kustomize_build(rendered / KUBERNETES / "overlays/example")
    example = rendered / KUBERNETES / "base/secret.example.yaml"
    variables = {**config_map(overlay), **secret_values(made_secret(example, tmp_path))}
    variables.update(service_env)  # real backing services for the Secret's placeholders
    command = ["python", "-m", f"{IDENTITY['package_name']}.manage", "check", "--deploy"]
    result = run_one_off(project, [*command, "--fail-level", "WARNING"], variables, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(security." not in result.stdout + result.stderr


@pytest.mark.pairwise
def test_the_example_secrets_placeholders_are_refused_at_startup(
    code_combination, project: Path, render
) -> None:
    rendered = kubernetes_render(code_combination, render)
    base = kustomize_build(rendered / KUBERNETES / "base")
    placeholders = example_secret(rendered)
    if not placeholders:  # nothing secret to give: the ConfigMap alone starts the service
        with running_web(project, config_map(base)) as web:
            assert web.get("/healthz")[0] == 200
        return
    variables = {**config_map(base), **placeholders, "PORT": str(free_port())}
    result = run_one_off(project, procfile(project)["web"], variables, timeout=30)
    assert result.returncode != 0, "the service started with the example secret's placeholders"
    for name in placeholders:
        assert name in result.stderr, f"{name} is not named in:\n{result.stderr}"
