"""`copier update`: from an older version to the work in hand, keeping the user's edits.

Versions are tags of a throwaway template repository: v0.2.0, v0.5.0, v0.7.0 and v0.9.0 are
commits of this one (CHANGELOG.md names them), v0.10.0 the template as it is on disk; v0.11.0,
in a copy of it, is a later version that adds to the template's dependencies. Projects are made
the way the README of each version says: up to 0.2.0 with `--trust` (those versions ran a task
that locked the project), since 0.3.0 with the plain command, then `git init` and `uv lock`.
"""

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import psycopg
import pytest
import yaml

from helpers.commands import assert_succeeds, rendered_files
from helpers.matrix import IDENTITY, TEMPLATE_ROOT, choice_questions, defaults, load_copier_yml
from helpers.pipelines import OnHost, run_github_job_steps
from helpers.python_root import in_project
from helpers.readme import commands, shell_blocks

OLD_TAG, OLD_COMMIT = "v0.2.0", "d2af6324b930f5f9ef6b77ff568d4586cf7a6e97"
# The last version to offer Python 3.11.
PREVIOUS_TAG, PREVIOUS_COMMIT = "v0.5.0", "54efb260ba24a8c03751977a4247dd04aee92e86"
# The last release whose dependency lists were in name order (hooks/own_dependencies.py).
LAST_TAG, LAST_COMMIT = "v0.7.0", "1327293d23fb4a13d60891465732eeb99493ed09"
# The last release, before three modules were renamed (hooks/renamed_modules.py).
RELEASED_TAG, RELEASED_COMMIT = "v0.9.0", "57fd5b69de282a2640343e7135d3bd51239cc9a5"
NEW_TAG = "v0.10.0"
FUTURE_TAG = "v0.11.0"
# CHANGELOG 0.3.0: a project from a version with the task is updated once with these, so that
# neither version's task runs (the old one's uv.lock would count as a file the template dropped).
FROM_A_VERSION_WITH_TASKS = ("--trust", "--skip-tasks")
PACKAGE = IDENTITY["package_name"]
COPIER_VERSIONS = {
    "newest-copier": [sys.executable, "-m", "copier"],
    "oldest-copier": [
        "uv", "tool", "run", "--from", f"copier=={load_copier_yml()['_min_copier_version']}",
        "copier",
    ],
}  # fmt: skip


def git(repo: Path, *arguments: str) -> str:
    return assert_succeeds(["git", *arguments], repo).stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)


def unpack(source: Path, commit: str, into: Path) -> None:
    """The tree of `commit` in the repository `source`, written into `into`."""
    tree = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=source, capture_output=True
    )
    assert tree.returncode == 0, f"{commit} is not in {source}'s history: {tree.stderr}"
    with tarfile.open(fileobj=io.BytesIO(tree.stdout)) as archive:
        archive.extractall(into, filter="data")


def tagged_template(repo: Path, versions: list[tuple[Path, str, str]]) -> Path:
    """A repository at `repo` with a commit per (source, commit, tag), each tagged."""
    git(repo, "init", "--quiet")
    for source, commit, tag in versions:
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        unpack(source, commit, repo)
        commit_all(repo, tag)
        git(repo, "tag", tag)
    return repo


@pytest.fixture(scope="session")
def versioned_template(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    return tagged_template(
        tmp_path_factory.mktemp("versioned-template"),
        [
            (TEMPLATE_ROOT, OLD_COMMIT, OLD_TAG),
            (TEMPLATE_ROOT, PREVIOUS_COMMIT, PREVIOUS_TAG),
            (TEMPLATE_ROOT, LAST_COMMIT, LAST_TAG),
            (TEMPLATE_ROOT, RELEASED_COMMIT, RELEASED_TAG),
            (template_repo, "HEAD", NEW_TAG),
        ],
    )


# What a later version adds at the end of the template's lists, next to the user's.
FUTURE_ADDITIONS = {"dependencies": '"tenacity>=9.0",', "dev": '"pytest-timeout>=2.3",'}


@pytest.fixture(scope="session")
def future_template(tmp_path_factory: pytest.TempPathFactory, versioned_template: Path) -> Path:
    """The versioned template and a later version that adds a dependency to the end of each of
    the template's lists, the place nearest the user's."""
    repo = tmp_path_factory.mktemp("future-template") / "template"
    git(versioned_template, "clone", "--quiet", str(versioned_template), str(repo))
    pyproject = repo / "template" / "pyproject.toml.jinja"
    text = pyproject.read_text()
    for marker, added in (
        ("    # Yours: `uv add` appends them here.\n", FUTURE_ADDITIONS["dependencies"]),
        ("    # Yours: `uv add --dev` appends them here.\n", FUTURE_ADDITIONS["dev"]),
    ):
        assert text.count(marker) == 1, marker
        text = text.replace(marker, f"    {added}\n{marker}")
    pyproject.write_text(text)
    commit_all(repo, FUTURE_TAG)
    git(repo, "tag", FUTURE_TAG)
    return repo


def copier(command: list[str], *arguments: str, cwd: Path) -> None:
    assert_succeeds([*command, *arguments, "--defaults", "--quiet"], cwd)


def render(
    template: Path, destination: Path, answers: dict[str, str], ref: str | None = None
) -> Path:
    """A project as its user makes it: copy, then the steps the after-copy message gives."""
    data = [arg for q, a in {**IDENTITY, **answers}.items() for arg in ("--data", f"{q}={a}")]
    ref_arguments = (["--vcs-ref", ref] if ref else []) + (["--trust"] if ref == OLD_TAG else [])
    copier(COPIER_VERSIONS["newest-copier"], "copy", *ref_arguments, *data, str(template),
           str(destination), cwd=destination.parent)  # fmt: skip
    if ref != OLD_TAG:
        git(destination, "init", "--quiet")
        assert_succeeds(["uv", "lock", "--quiet"], destination)
    commit_all(destination, "rendered from the template")
    return destination


def recorded_answers(project: Path) -> dict:
    """The answers file Copier keeps, read as the YAML it is (its layout is Copier's)."""
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def required_settings(project: Path) -> list[str]:
    """The variables `.env.example` marks required (a comment beginning "# Required" above)."""
    required, marked = [], False
    for line in (project / ".env.example").read_text().splitlines():
        if line.startswith("# Required"):
            marked = True
        elif line.strip() and not line.startswith("#"):
            if marked:
                required.append(line.split("=", 1)[0])
            marked = False
    return required


def locked_packages(lock: bytes) -> set[str]:
    return {package["name"] for package in tomllib.loads(lock.decode())["package"]}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


# The edits a user makes to a fresh project, each away from what the template changes later.
# (Not a new endpoint in create_app: the newest version moves /healthz and /readyz out of it, a
# real conflict by design, shown inline as the conflict test below shows.)
APP_DOCSTRING = '"""The web application, built by a factory'
OUR_DOCSTRING = '"""Orders\' web app, built by a factory'
OUR_NOTES = "\n## Our notes\n\nDeploys go out every Tuesday.\n"


def make_users_edits(project: Path) -> None:
    edit(project / f"src/{PACKAGE}/app.py", APP_DOCSTRING, OUR_DOCSTRING)
    # (Not a settings default: 0.3.0 moves the settings' fields, a real conflict by design.)
    edit(project / f"src/{PACKAGE}/request_id.py", "{1,128}", "{1,64}")
    edit(project / "tests/test_request_id.py", '"x" * 200', '"x" * 100')
    # At the list's head, where `uv add` put one while the template's list was in name order:
    # the update across 0.8.0 moves it to the list's end (hooks/own_dependencies.py).
    edit(
        project / "pyproject.toml", "dependencies = [\n", 'dependencies = [\n    "orjson>=3.10",\n'
    )
    description = f"{IDENTITY['description']}\n"
    edit(project / "README.md", description, description + OUR_NOTES)
    assert_succeeds(["uv", "lock", "--quiet"], project)
    commit_all(project, "the user's edits")


MARKERS = ("<<<<<<< ", "=======", ">>>>>>> ")


def templates_side(text: str) -> str:
    """Each conflict in `text` resolved to the template's side ("after updating")."""
    kept, side = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith(MARKERS[0]):
            side = "ours"
        elif line.startswith(MARKERS[1]) and side == "ours":
            side = "theirs"
        elif line.startswith(MARKERS[2]):
            side = None
        elif side != "ours":
            kept.append(line)
    return "".join(kept)


def conflict_markers(project: Path) -> list[str]:
    return [
        name for name, content in rendered_files(project).items()
        if b"<<<<<<< " in content or name.endswith(".rej")
    ]  # fmt: skip


REPRESENTATIVE = [
    {"web_framework": "fastapi"},
    {"web_framework": "flask", "database": "postgresql", "worker": "celery", "ci": "gitlab"},
]


@pytest.mark.once  # an update path: every parameter in the full tier
@pytest.mark.parametrize("copier_version", COPIER_VERSIONS)
@pytest.mark.parametrize("answers", REPRESENTATIVE, ids=lambda a: "-".join(a.values()))
def test_update_to_the_newest_version_keeps_the_users_edits(
    versioned_template: Path, tmp_path: Path, answers, copier_version, postgres, redis_server
) -> None:
    project = render(versioned_template, tmp_path / "project", answers, ref=OLD_TAG)
    assert "honcho" not in (project / "pyproject.toml").read_text(), "the old version is not old"
    make_users_edits(project)
    users_lock = (project / "uv.lock").read_bytes()

    copier(COPIER_VERSIONS[copier_version], "update", *FROM_A_VERSION_WITH_TASKS, cwd=project)

    assert conflict_markers(project) == []
    assert (project / "uv.lock").read_bytes() == users_lock, "the update touched the user's lock"
    assert OUR_DOCSTRING in (project / f"src/{PACKAGE}/app.py").read_text()
    assert "{1,64}" in (project / f"src/{PACKAGE}/request_id.py").read_text()
    assert '"x" * 100' in (project / "tests/test_request_id.py").read_text()
    assert '"orjson>=3.10"' in (project / "pyproject.toml").read_text()
    readme = (project / "README.md").read_text()
    assert OUR_NOTES in readme and "uv run honcho start" in readme
    assert recorded_answers(project)["_commit"] == NEW_TAG

    env = {}
    if answers.get("database") == "postgresql":
        env["DATABASE_URL"] = postgres.create_database(f"update_{copier_version}".replace("-", "_"))
    if answers.get("worker") == "celery":
        env["REDIS_URL"] = redis_server.allocate(f"update-{copier_version}")
    for check in (
        ["uv", "lock", "--quiet"],  # the step after an update (README): lock what was added
        ["uv", "sync", "--locked", "--quiet"],
        ["uv", "run", "ruff", "check", "."],
        ["uv", "run", "ruff", "format", "--check", "."],
        ["uv", "run", "pytest", "-q"],
    ):
        assert_succeeds(check, project, env={**os.environ, **env})


@pytest.mark.once  # an update path: every parameter in the full tier
@pytest.mark.parametrize("copier_version", COPIER_VERSIONS)
def test_a_project_on_python_3_11_moves_to_3_12_is_told_and_keeps_the_users_edits(
    versioned_template: Path, tmp_path: Path, copier_version
) -> None:
    """3.11 is offered no longer: the plain `copier update` moves the project to the nearest
    version offered, says so, and the project installs, lints and tests on it."""
    project = render(
        versioned_template, tmp_path / "project", {"python_version": "3.11"}, ref=PREVIOUS_TAG
    )
    make_users_edits(project)

    # Across 0.8.0, whose migration moves the user's dependencies: with --trust (README).
    updated = assert_succeeds(
        [*COPIER_VERSIONS[copier_version], "update", "--defaults", "--trust"], project
    )

    said = updated.stdout + updated.stderr
    assert "moved from Python 3.11 to 3.12 (3.11 is no longer offered)" in said, said
    assert "--data python_version=" in said, said
    # The user's notes sit next to the README's line naming the Python, which the move changes:
    # a conflict, shown inline with both sides kept; resolved by keeping both but the old line.
    assert conflict_markers(project) == ["README.md"]
    readme = (project / "README.md").read_text()
    assert OUR_NOTES.strip() in readme and "service on Python 3.12" in readme, readme
    resolved = [
        line
        for line in readme.splitlines(keepends=True)
        if not line.startswith(MARKERS) and "service on Python 3.11" not in line
    ]
    (project / "README.md").write_text("".join(resolved))
    assert conflict_markers(project) == []
    assert (project / ".python-version").read_text() == "3.12\n"
    assert 'requires-python = ">=3.12"' in (project / "pyproject.toml").read_text()
    assert "FROM python:3.12-slim-trixie@" in (project / "Dockerfile").read_text()
    answers = recorded_answers(project)
    assert answers["python_version"] == "3.12" and answers["_commit"] == NEW_TAG, answers
    assert "previous_python_version" not in answers, "a computed value was recorded"
    assert OUR_DOCSTRING in (project / f"src/{PACKAGE}/app.py").read_text()
    assert '"x" * 100' in (project / "tests/test_request_id.py").read_text()
    assert '"orjson>=3.10"' in (project / "pyproject.toml").read_text()
    for check in (
        ["uv", "lock", "--quiet"],
        ["uv", "sync", "--locked", "--quiet"],
        ["uv", "run", "python", "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
        ["uv", "run", "ruff", "check", "."],
        ["uv", "run", "ruff", "format", "--check", "."],
        ["uv", "run", "pytest", "-q"],
    ):
        assert_succeeds(check, project)


def test_a_line_both_changed_is_a_conflict_shown_inline_and_the_lock_stays_whole(
    versioned_template: Path, tmp_path: Path
) -> None:
    """The user and the template change the same line (ruff's bound): both sides are kept,
    marked; the user's own dependency, added beside it, is not part of the conflict."""
    project = render(versioned_template, tmp_path / "project", {}, ref=OLD_TAG)
    edit(project / "pyproject.toml", '"ruff>=0.8",', '"ruff>=0.9",')
    edit(project / "pyproject.toml", "dev = [\n", 'dev = [\n    "freezegun>=1.5",\n')
    assert_succeeds(["uv", "lock", "--quiet"], project)
    commit_all(project, "the user's bound on ruff, which the template raises too; a dependency")
    users_lock = (project / "uv.lock").read_bytes()

    copier(COPIER_VERSIONS["newest-copier"], "update", *FROM_A_VERSION_WITH_TASKS, cwd=project)

    assert conflict_markers(project) == ["pyproject.toml"]
    merged = (project / "pyproject.toml").read_text()
    assert '"ruff>=0.9"' in merged, "the user's side was dropped"
    assert '"ruff>=0.16"' in merged, "the template's side was dropped"
    ours = merged.split("<<<<<<< ")[1].split("=======")[0]
    assert "freezegun" not in ours and '"freezegun>=1.5",' in merged, merged
    assert (project / "uv.lock").read_bytes() == users_lock, "the update merged into uv.lock"
    # The README's line lists the conflicted files, pyproject.toml unparsable as it is; the
    # project's own test names them and fails its tests until they are resolved.
    (listing,) = [
        line.split("#")[0]
        for line in commands(shell_blocks(project / "README.md")["Updating from the template"][0])
        if line.startswith("git grep")
    ]
    listed = subprocess.run(["bash", "-c", listing], cwd=project, capture_output=True, text=True)
    assert listed.stdout.split() == ["pyproject.toml"], listed
    conflicts = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest",
                 "tests/test_conflicts.py"]  # fmt: skip
    unresolved = subprocess.run(conflicts, cwd=project, capture_output=True, text=True)
    assert unresolved.returncode != 0  # pyproject.toml does not parse: no test can run
    assert "pyproject.toml" in unresolved.stdout + unresolved.stderr, unresolved
    # Resolved by taking the template's side, then locked as the README says.
    (project / "pyproject.toml").write_text(templates_side(merged))
    assert conflict_markers(project) == []
    assert_succeeds(["uv", "lock", "--quiet"], project)
    assert {"freezegun", "honcho"} <= locked_packages((project / "uv.lock").read_bytes())
    # A conflict in a file no tool parses (the README) fails the project's tests, named.
    readme = (project / "README.md").read_text()
    (project / "README.md").write_text(
        f"{readme}<<<<<<< before\nours\n=======\ntheirs\n>>>>>>> after\n"
    )
    unresolved = subprocess.run(conflicts, cwd=project, capture_output=True, text=True)
    assert unresolved.returncode == 1 and "README.md" in unresolved.stdout, unresolved
    (project / "README.md").write_text(readme)
    assert subprocess.run(conflicts, cwd=project, capture_output=True).returncode == 0


FRAMEWORKS = [
    {"web_framework": "fastapi"},
    {"web_framework": "flask", "database": "postgresql"},
    {"web_framework": "django", "database": "postgresql", "worker": "celery"},
]
USERS_DEPENDENCIES = {"dependencies": ["orjson>=3.10", "tenacity>=8.0"], "dev": ["freezegun>=1.5"]}


def add_users_dependencies(project: Path) -> None:
    """The user's own dependencies, added as the README says: `uv add`, `uv add --dev`."""
    assert_succeeds(["uv", "add", "--quiet", "--no-sync", *USERS_DEPENDENCIES["dependencies"]],
                    project)  # fmt: skip
    assert_succeeds(["uv", "add", "--quiet", "--no-sync", "--dev", *USERS_DEPENDENCIES["dev"]],
                    project)  # fmt: skip
    commit_all(project, "the user's dependencies")


def listed(project: Path) -> dict[str, list[str]]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    return {
        "dependencies": pyproject["project"]["dependencies"],
        "dev": pyproject["dependency-groups"]["dev"],
    }


def assert_users_dependencies_last(project: Path) -> None:
    """Each list ends with the user's dependencies, as `uv add` wrote them."""
    for name, lists in listed(project).items():
        users = USERS_DEPENDENCIES[name]
        assert lists[-len(users) :] == users, f"{name}: {lists}"


@pytest.mark.once  # an update path: every framework in the full tier
@pytest.mark.parametrize("answers", FRAMEWORKS, ids=lambda a: "-".join(a.values()))
def test_the_users_added_dependencies_never_conflict_with_a_later_versions(
    future_template: Path, tmp_path: Path, answers
) -> None:
    """`uv add` appends to the template's lists, which are not in name order; a later version
    that adds to the end of each list (the nearest place to the user's) and a dependency the
    user has too (tenacity) merges with no conflict, needs no --trust, and locks."""
    project = render(future_template, tmp_path / "project", answers, ref=NEW_TAG)
    add_users_dependencies(project)
    assert_users_dependencies_last(project)

    copier(COPIER_VERSIONS["newest-copier"], "update", "--vcs-ref", FUTURE_TAG, cwd=project)

    assert conflict_markers(project) == []
    assert_users_dependencies_last(project)
    for name, added in FUTURE_ADDITIONS.items():
        assert added.strip('",') in listed(project)[name], f"{name}: the template's addition"
    assert_succeeds(["uv", "lock", "--quiet"], project)
    assert {"orjson", "freezegun", "pytest-timeout"} <= locked_packages(
        (project / "uv.lock").read_bytes()
    )


def test_the_template_update_workflow_pushes_the_update_and_its_lock_to_a_branch(
    future_template: Path, tmp_path: Path
) -> None:
    """The rendered GitHub workflow's steps, run in order up to the push, against a bare
    repository standing in for GitHub's: a later version of the template is on the branch
    template-update, answers, files and uv.lock, and main is as it was. Opening the pull
    request and starting CI on it (`gh`) need GitHub itself, and are not run here."""
    project = render(future_template, tmp_path / "project", {"ci": "github"}, ref=NEW_TAG)
    origin = tmp_path / "origin.git"
    main = bare_origin(project, origin)
    path = ".github/workflows/template-update.yml"
    assert_succeeds(["check-jsonschema", "--builtin-schema", "vendor.github-workflows", path],
                    project)  # fmt: skip
    workflow = yaml.safe_load((project / path).read_text())
    job = workflow["jobs"]["update"]
    # GitHub's address for the repository, sent (by git's `insteadOf`) to the bare one.
    token, server, repository = "ghs-not-a-real-one", "https://github.com", "acme/orders"
    github = {
        "GH_TOKEN": token, "GITHUB_SERVER_URL": server, "GITHUB_REPOSITORY": repository,
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{origin}.insteadOf",
        "GIT_CONFIG_VALUE_0": f"https://x-access-token:{token}@{server.removeprefix('https://')}/{repository}.git",
    }  # fmt: skip
    steps = ["Update from the template, on the branch template-update", "Push the branch"]
    results = run_github_job_steps(OnHost(), project, job, github, through=steps[-1])
    report = "\n".join(f"--- {name}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
                       for name, r in results)  # fmt: skip
    assert [name.rsplit(" (", 1)[0] for name, _ in results] == steps, report
    # The token only in the step that pushes (the template's code runs in the one before).
    assert [step.get("env", {}).get("GH_TOKEN") for step in job["steps"] if "run" in step] == [
        None,
        "${{ github.token }}",
        "${{ github.token }}",
    ]
    assert all(r.returncode == 0 for _, r in results), report

    assert_the_update_was_pushed(origin, main, tmp_path / "pushed")


def bare_origin(project: Path, origin: Path) -> str:
    """A bare repository standing in for the forge's, the project's main pushed to it; main's
    commit there. It takes push options, as GitLab's does, and a hook records them."""
    assert_succeeds(["git", "init", "--quiet", "--bare", str(origin)], origin.parent)
    git(origin, "config", "receive.advertisePushOptions", "true")
    hook = origin / "hooks" / "pre-receive"
    # It runs in the repository's folder, with each option in GIT_PUSH_OPTION_<n>.
    hook.write_text(
        "#!/bin/sh\nenv | grep '^GIT_PUSH_OPTION_[0-9]' | cut -d= -f2- >> push-options\n"
    )
    hook.chmod(0o755)
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "--quiet", "origin", "HEAD:main")
    return git(origin, "rev-parse", "main")


def assert_the_update_was_pushed(origin: Path, main: str, clone: Path) -> None:
    """The branch template-update holds the later version, its additions locked; main is as
    it was."""
    assert git(origin, "rev-parse", "main") == main, "main moved"
    git(origin.parent, "clone", "--quiet", "--branch", "template-update", str(origin), str(clone))
    assert recorded_answers(clone)["_commit"] == FUTURE_TAG
    assert conflict_markers(clone) == []
    for added in FUTURE_ADDITIONS.values():
        assert added.strip('",') in (clone / "pyproject.toml").read_text(), added
    assert {"tenacity", "pytest-timeout"} <= locked_packages((clone / "uv.lock").read_bytes())
    assert_succeeds(["uv", "lock", "--check", "--offline"], clone)


def test_the_gitlab_template_update_job_pushes_the_update_and_its_lock_with_a_merge_request(
    future_template: Path, tmp_path: Path
) -> None:
    """The rendered pipeline's template-update job, its script run as written with the
    variables GitLab gives a scheduled pipeline, its push going (by git's `insteadOf`) to a
    bare repository that records the push options GitLab reads to open the merge request.
    The job runs on that schedule alone, and the other jobs do not."""
    answers = {"ci": "gitlab", "repository": "acme/orders"}
    project = render(future_template, tmp_path / "project", answers, ref=NEW_TAG)
    origin = tmp_path / "origin.git"
    main = bare_origin(project, origin)
    pipeline = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    job = pipeline["template-update"]
    assert job["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "schedule" && $TEMPLATE_UPDATE == "true"'}
    ]
    for other in ("test", "build-image"):
        assert pipeline[other]["rules"][0] == {"if": '$TEMPLATE_UPDATE == "true"', "when": "never"}
    host, token = "gitlab.example.com", "glpat-not-a-real-one"
    forge = f"https://template-update:{token}@{host}/acme/orders.git"
    variables = {
        "CI": "true", "GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "schedule",
        "TEMPLATE_UPDATE": "true", "TEMPLATE_UPDATE_TOKEN": token, "CI_SERVER_HOST": host,
        "CI_PROJECT_PATH": "acme/orders", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main",
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{origin}.insteadOf",
        "GIT_CONFIG_VALUE_0": forge,
    }  # fmt: skip
    git(project, "checkout", "--quiet", "--detach")  # as the runner checks a commit out
    for line in job["script"]:
        # On the project's Python: in the root where only the root has it (python_root.py).
        command = in_project(["bash", "-e", "-c", line], project)
        ran = subprocess.run(command, cwd=project, capture_output=True, text=True,
                             env={**os.environ, **variables}, timeout=600)  # fmt: skip
        assert ran.returncode == 0, f"{line}\n{ran.stdout}\n{ran.stderr}"

    assert_the_update_was_pushed(origin, main, tmp_path / "pushed")
    options = (origin / "push-options").read_text().splitlines()
    assert "merge_request.create" in options and "merge_request.target=main" in options, options
    assert f"merge_request.title=Update from the template to {FUTURE_TAG}" in options, options


@pytest.mark.once  # an update path: every framework in the full tier
@pytest.mark.parametrize("answers", FRAMEWORKS, ids=lambda a: "-".join(a.values()))
def test_an_update_across_0_8_0_moves_the_users_dependencies_out_of_the_templates(
    versioned_template: Path, tmp_path: Path, answers
) -> None:
    """Up to 0.7.0 the template's lists were in name order and `uv add` put the user's among
    them; the update to 0.8.0 reorders the template's. Its migration (hooks/
    own_dependencies.py, asking for --trust) moves the user's to the lists' end: no conflict."""
    project = render(versioned_template, tmp_path / "project", answers, ref=LAST_TAG)
    add_users_dependencies(project)
    head = git(project, "rev-parse", "HEAD")
    refused = subprocess.run(
        [*COPIER_VERSIONS["newest-copier"], "update", "--defaults", "--quiet"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0, "an update running a migration went ahead without --trust"
    assert git(project, "status", "--porcelain") == "" and git(project, "rev-parse", "HEAD") == head

    copier(COPIER_VERSIONS["newest-copier"], "update", "--trust", cwd=project)

    assert conflict_markers(project) == []
    assert recorded_answers(project)["_commit"] == NEW_TAG
    assert_users_dependencies_last(project)
    assert not list((project / ".git").glob("copier-twelve-factor-*")), "the kept copy stayed"
    assert git(project, "diff", "--cached", "--name-only") == "", "the migration left it staged"
    assert_succeeds(["uv", "lock", "--quiet"], project)
    assert_succeeds(["uv", "run", "--quiet", "ruff", "check", "."], project)


@pytest.mark.parametrize("trusting", [("--trust",), ("--trust", "--skip-tasks")], ids=" ".join)
def test_an_update_from_before_0_3_0_keeps_the_users_lock(
    versioned_template: Path, tmp_path: Path, trusting: tuple[str, ...]
) -> None:
    """Copier's hint for such a project is --trust, which re-ran the old version's locking task
    in its copy of that version and so deleted the project's uv.lock (hooks/keep_lock.py)."""
    project = render(versioned_template, tmp_path / "project", {}, ref=OLD_TAG)
    users_lock = (project / "uv.lock").read_bytes()
    copier(COPIER_VERSIONS["newest-copier"], "update", *trusting, cwd=project)
    assert recorded_answers(project)["_commit"] == NEW_TAG
    assert (project / "uv.lock").read_bytes() == users_lock, "the update took the user's lock"
    assert not list((project / ".git").glob("copier-twelve-factor-*")), "the kept copy stayed"


def test_update_with_no_template_change_changes_nothing(template_repo: Path, tmp_path: Path):
    project = render(template_repo, tmp_path / "project", {})
    copier(COPIER_VERSIONS["newest-copier"], "update", cwd=project)
    assert git(project, "status", "--porcelain") == ""


def answer_changes() -> list[tuple[str, str, str]]:
    """For each choice question: its default to each other value, and back."""
    changes = []
    for question, values in choice_questions().items():
        default = defaults()[question]
        for other in (v for v in values if v != default):
            changes += [(question, default, other), (question, other, default)]
    return changes


@pytest.mark.once  # an update path: every parameter in the full tier
@pytest.mark.parametrize(("question", "before", "after"), answer_changes(), ids=lambda v: str(v))
def test_changing_an_answer_by_update_gives_a_fresh_copys_files(
    template_repo: Path, tmp_path: Path, question: str, before: str, after: str
) -> None:
    project = render(template_repo, tmp_path / "updated", {question: before})
    updated = assert_succeeds([*COPIER_VERSIONS["newest-copier"], "update", "--defaults",
                               "--data", f"{question}={after}"], project)  # fmt: skip
    # The message names the settings the service now requires, a new one among them.
    said = updated.stdout + updated.stderr
    unnamed = [name for name in required_settings(project) if not re.search(rf"\b{name}\b", said)]
    assert not unnamed, f"the message after update does not name {unnamed}:\n{said}"
    if question == "python_version":  # and says which Python the project is on now
        assert f"The project is on Python {after}, as `--data` said" in said, said
    assert_succeeds(["uv", "lock", "--quiet"], project)  # the step after an update (README)
    fresh = render(template_repo, tmp_path / "fresh", {question: after})
    updated_files, fresh_files = rendered_files(project), rendered_files(fresh)
    assert sorted(updated_files) == sorted(fresh_files)
    # uv.lock is the project's, not the template's: `uv lock` keeps the versions it had locked,
    # so it must lock the same packages and be current, not be byte-equal to a fresh resolve.
    assert locked_packages(updated_files.pop("uv.lock")) == locked_packages(
        fresh_files.pop("uv.lock")
    )
    assert_succeeds(["uv", "lock", "--check", "--offline"], project)
    differing = [name for name in fresh_files if updated_files[name] != fresh_files[name]]
    assert differing == []


def test_a_switch_to_django_moves_the_notes_alembic_made_into_djangos_table(
    template_repo: Path, tmp_path: Path, postgres
) -> None:
    """FastAPI with PostgreSQL, its notes table made by its Alembic migrations and two notes in
    it, moved to Django by `copier update --data web_framework=django`: the release's migrate,
    now Django's, makes Django's table with the notes in it, ids kept; the next note follows
    them, and Alembic's table and its bookkeeping are gone."""
    answers = {"web_framework": "fastapi", "database": "postgresql", "python_version": "3.13"}
    project = render(template_repo, tmp_path / "project", answers)
    url = postgres.create_database("switch_to_django")
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "localhost"}
    migrate = ["uv", "run", "python", "-m", f"{PACKAGE}.manage", "migrate"]
    assert_succeeds(migrate, project, env=env)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO notes (text) VALUES ('first'), ('second')")

    updated = [*COPIER_VERSIONS["newest-copier"], "update", "--defaults"]
    assert_succeeds([*updated, "--data", "web_framework=django"], project)
    assert_succeeds(["uv", "lock", "--quiet"], project)
    assert_succeeds(migrate, project, env=env)

    with psycopg.connect(url, autocommit=True) as connection:
        notes = connection.execute("SELECT id, text FROM notes ORDER BY id").fetchall()
        assert notes == [(1, "first"), (2, "second")]
        (next_id,) = connection.execute("INSERT INTO notes (text) VALUES ('third') RETURNING id")
        assert next_id == (3,)
        left = connection.execute(
            "SELECT to_regclass('notes_before_django'), to_regclass('alembic_version')"
        ).fetchone()
        assert left == (None, None)


def test_the_dependency_migration_knows_every_dependency_the_template_lists() -> None:
    """hooks/own_dependencies.py tells the template's lines from the user's by name."""
    sys.path.insert(0, str(TEMPLATE_ROOT / "hooks"))
    try:
        import own_dependencies
    finally:
        sys.path.pop(0)
    text = (TEMPLATE_ROOT / "template" / "pyproject.toml.jinja").read_text()
    names = {
        own_dependencies.normalized(entry[1])
        for line in text.splitlines()
        if (entry := own_dependencies.ENTRY.match(line))
    }
    assert "fastapi" in names and "honcho" in names, names
    assert names <= own_dependencies.TEMPLATE_NAMES, names - own_dependencies.TEMPLATE_NAMES


def test_the_dependency_migration_lists_the_users_dependencies_whose_list_the_update_removed(
    tmp_path: Path,
) -> None:
    """Run as Copier runs it (in the project, on Copier's Python): a dev dependency of the
    user's, whose list a later version no longer has, is kept at pyproject.toml's end as a
    comment, said on stderr, and nothing is left staged or kept."""
    hook = TEMPLATE_ROOT / "hooks" / "own_dependencies.py"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = [\n    "fastapi>=0.115",\n    "orjson>=3.10",\n]\n'
        '\n[dependency-groups]\ndev = [\n    "freezegun>=1.5",\n    "pytest>=8.3",\n]\n'
    )
    git(tmp_path, "init", "--quiet")
    commit_all(tmp_path, "A project")
    before = subprocess.run([sys.executable, hook, "before"], cwd=tmp_path, text=True,
                            capture_output=True)  # fmt: skip
    assert before.returncode == 0, before.stderr
    assert "orjson" not in pyproject.read_text() and "freezegun" not in pyproject.read_text()
    # The update: a version with no dev group.
    pyproject.write_text('[project]\nname = "x"\ndependencies = [\n    "fastapi>=0.116",\n]\n')
    after = subprocess.run([sys.executable, hook, "after"], cwd=tmp_path, text=True,
                           capture_output=True)  # fmt: skip
    assert after.returncode == 0, after.stderr
    document = tomllib.loads(pyproject.read_text())
    assert document["project"]["dependencies"] == ["fastapi>=0.116", "orjson>=3.10"]
    assert pyproject.read_text().endswith('# "freezegun>=1.5",\n'), pyproject.read_text()
    assert "freezegun" in after.stderr and "orjson" in after.stderr
    assert git(tmp_path, "diff", "--cached", "--name-only") == ""
    assert not (tmp_path / ".git" / "copier-twelve-factor-dependencies.json").exists()


# Per framework: (old name, new name, the user's edit as (old text, new text)), under src/PKG/.
RENAMED_EDITS = {
    "django": (
        "django_apps.py", "django_base_settings.py",
        ('    "django.contrib.admin",\n',
         '    "django.contrib.admin",\n    "django.contrib.humanize",  # ours\n'),
    ),
    "flask": (
        "admin/settings_loaded.py", "manage/with_settings.py",
        ("    @functools.wraps(command)\n",
         "    # Ours: every command's start.\n    @functools.wraps(command)\n"),
    ),
}  # fmt: skip
# An edit of a line the renaming version changed too: a conflict, both sides kept.
SERVICES_EDIT = (
    '"""The backing services of one process, each reached through its URL variable alone."""',
    '"""The backing services of our process: Postgres and Redis."""',
)


@pytest.mark.once  # an update path: both frameworks with a renamed module of their own
@pytest.mark.parametrize("copier_version", COPIER_VERSIONS)
@pytest.mark.parametrize("framework", RENAMED_EDITS)
def test_an_update_across_0_10_0_carries_the_users_edits_to_each_renamed_module(
    versioned_template: Path, tmp_path: Path, framework: str, copier_version: str
) -> None:
    """Copier takes a renamed file for one deleted and one added, and drops the user's edits of
    the old; hooks/renamed_modules.py merges them into the new, a clash shown inline, and moves
    a module the user added to the renamed `admin/` package to `manage/`."""
    answers = {"web_framework": framework, "database": "postgresql", "worker": "celery"}
    project = render(versioned_template, tmp_path / "project", answers, ref=RELEASED_TAG)
    package = project / "src" / PACKAGE
    old, new, (before, after) = RENAMED_EDITS[framework]
    edit(package / old, before, after)
    edit(package / "services.py", *SERVICES_EDIT)
    ours = '"""A command of ours."""\n'
    (package / "admin" / "ours.py").write_text(ours)
    commit_all(project, "our edits")

    copier(COPIER_VERSIONS[copier_version], "update", "--trust", cwd=project)

    assert recorded_answers(project)["_commit"] == NEW_TAG
    assert not (package / old).exists() and not (package / "services.py").exists()
    # Where only the user changed a line, the edit is in the new file, and no marker.
    assert after in (package / new).read_text()
    assert conflict_markers(project) == [f"src/{PACKAGE}/backing_services.py"]
    # Where the template changed the same line, both sides, between markers.
    services = (package / "backing_services.py").read_text()
    assert SERVICES_EDIT[1] in services and "def connect(settings: Settings)" in services
    assert (package / "manage" / "ours.py").read_text() == ours
    assert not (package / "admin").exists(), sorted((package / "admin").rglob("*"))
