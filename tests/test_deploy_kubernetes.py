"""`deploy: kubernetes`: manifests that validate, build, and run the Procfile's processes.

No cluster runs here (no container engine, no image registry), so the manifests are checked
against the Kubernetes schemas and against the rendered service itself: the settings they give
start it, their probe paths answer, and their example secrets are refused.
"""

from pathlib import Path

import pytest
import yaml
from artifacts import by_component, env_example_names, kustomize_build, pod_spec
from conftest import IDENTITY, assert_succeeds
from processes import app_env, procfile, run_one_off, running_web
from servers import free_port

KUBERNETES = Path("deploy/kubernetes")
SLUG = IDENTITY["project_slug"]
# What a pod's stop needs on top of the service's drain: the web pods' preStop sleep.
PRE_STOP_SECONDS = 5


@pytest.fixture
def rendered(every_combination: dict[str, str], render) -> Path:
    return render(every_combination)


@pytest.fixture
def base(rendered: Path) -> list[dict]:
    return kustomize_build(rendered / KUBERNETES / "base")


def config_map(resources: list[dict]) -> dict[str, str]:
    (config,) = [r for r in resources if r["kind"] == "ConfigMap"]
    return config["data"]


def example_secret(project: Path) -> dict[str, str]:
    """The example Secret's keys and placeholders; none where the service needs no secret."""
    example = project / KUBERNETES / "base/secret.example.yaml"
    return yaml.safe_load(example.read_text())["stringData"] if example.exists() else {}


@pytest.mark.combinations(deploy="kubernetes")
def test_every_manifest_and_the_built_overlay_validate_against_the_schemas(
    rendered: Path, tmp_path: Path
) -> None:
    manifests = [
        path for path in (rendered / KUBERNETES).rglob("*.yaml")
        if path.name != "kustomization.yaml"
    ]  # fmt: skip
    built = tmp_path / "overlay.yaml"
    built.write_text(
        yaml.safe_dump_all(kustomize_build(rendered / KUBERNETES / "overlays/example"))
    )
    # Strict: a misspelt or misplaced field is an error, not something a cluster ignores.
    assert_succeeds(
        ["kubernetes-validate", "--strict", "--quiet", *map(str, manifests), str(built)], rendered
    )


@pytest.mark.combinations(deploy="kubernetes")
def test_the_example_overlay_sets_namespace_and_image_on_everything(rendered: Path) -> None:
    overlay = kustomize_build(rendered / KUBERNETES / "overlays/example")
    assert {r["metadata"].get("namespace") for r in overlay} == {SLUG}
    images = {c["image"] for r in overlay if r["kind"] in ("Deployment", "Job")
              for c in pod_spec(r)["containers"]}  # fmt: skip
    assert images == {f"registry.example.com/{SLUG}:0.1.0"}


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
    for workload in [r for r in base if r["kind"] in ("Deployment", "Job")]:
        for container in pod_spec(workload)["containers"]:
            named |= {item["name"] for item in container.get("env", [])}
            sources = sorted((kind, ref["name"]) for source in container["envFrom"]
                             for kind, ref in source.items())  # fmt: skip
            secret = [("secretRef", f"{SLUG}-secrets")] if example_secret(rendered) else []
            assert sources == [("configMapRef", f"{SLUG}-config"), *secret]
    assert named - env_example_names(rendered) == set()
    assert "SECRET_KEY" not in config_map(base), "a secret in the ConfigMap"


def kubernetes_render(combination: dict[str, str], render) -> Path:
    return render({**combination, "deploy": "kubernetes"})


def test_the_manifests_settings_start_the_service_and_its_probes_answer(
    combination, project: Path, render, service_env
) -> None:
    base = kustomize_build(kubernetes_render(combination, render) / KUBERNETES / "base")
    (container,) = pod_spec(by_component(base, "Deployment")["web"])["containers"]
    # The ConfigMap's settings, real secrets; PORT is the harness's free port, as the Procfile
    # binding on $PORT is shown elsewhere.
    with running_web(project, app_env(project, service_env, **config_map(base))) as web:
        for probe in ("livenessProbe", "readinessProbe"):
            status, _ = web.get(container[probe]["httpGet"]["path"])
            assert status == 200, probe


def test_the_example_secrets_placeholders_are_refused_at_startup(
    combination, project: Path, render
) -> None:
    rendered = kubernetes_render(combination, render)
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
