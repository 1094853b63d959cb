"""Releases users can pin: CHANGELOG.md names each version's commit; `.ci/tag-releases`, run in
any clone, tags every version there from it; `copier copy --vcs-ref vX.Y.Z` then renders each;
and the release workflow's step (.github/workflows/release.yml) tags, pushes and publishes as
written.

The clones here hold this repository's history and, on top of it, one commit of the work in
hand (the working tree as the tests render it): the top release, which names no commit until it
has landed, is tagged there, as the release workflow tags the commit it runs on.
"""

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from helpers.commands import assert_succeeds
from helpers.matrix import TEMPLATE_ROOT
from helpers.readme import block_with, shell_blocks
from helpers.workflows import machine_environment, report, run_steps, workflow

HEADING = re.compile(r"^## (\d+\.\d+\.\d+)(?: \(([^()]*)\))?$", re.MULTILINE)
COMMIT = re.compile(r"\bcommit ([0-9a-f]{40})\b")
REPOSITORY = "org/copier-twelve-factor"
TOKEN = "token-for-the-test"


def git(repo: Path, *arguments: str) -> str:
    return assert_succeeds(["git", *arguments], repo).stdout.strip()


def changelog_releases(text: str) -> list[tuple[str, str | None, str]]:
    """(version, commit named or None, section) for each version's section, newest first."""
    found = []
    matches = list(HEADING.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        section = text[match.start() : following.start() if following else len(text)]
        commit = COMMIT.search(match[2] or "")
        found.append((match[1], commit[1] if commit else None, section.rstrip("\n") + "\n"))
    return found


RELEASES = changelog_releases((TEMPLATE_ROOT / "CHANGELOG.md").read_text())


def work_in_hand_clone(destination: Path) -> Path:
    """A clone of this repository, with the working tree committed on top of its history."""
    assert_succeeds(["git", "clone", "--quiet", str(TEMPLATE_ROOT), str(destination)], Path("/"))
    git(destination, "rm", "-r", "--quiet", ".")
    listed = git(TEMPLATE_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for relative in filter(None, listed.split("\0")):
        source = TEMPLATE_ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    git(destination, "add", "-A")
    git(destination, "commit", "--quiet", "--allow-empty", "-m", "The work in hand")
    return destination


def test_changelog_names_each_versions_commit_where_that_version_is_the_top_section() -> None:
    versions = [version for version, _, _ in RELEASES]
    assert versions[:2] == ["0.9.0", "0.8.0"] and versions[-1] == "0.1.0", versions
    top, *older = RELEASES
    # The top release names its commit once it has landed (none while it is being made).
    heading = r"## 0\.9\.0 \(\d{4}-\d{2}-\d{2}(, commit [0-9a-f]{40})?\)\n"
    assert re.match(heading, top[2]), "the newest release's heading"
    assert all(commit for _, commit, _ in older), "only the top release may name no commit"
    named = [release for release in RELEASES if release[1]]
    earlier_commits = [commit for _, commit, _ in named[1:]] + [None]
    for (version, commit, _), earlier in zip(named, earlier_commits, strict=True):
        assert_succeeds(["git", "cat-file", "-e", f"{commit}^{{commit}}"], TEMPLATE_ROOT)
        if earlier:
            assert_succeeds(["git", "merge-base", "--is-ancestor", earlier, commit], TEMPLATE_ROOT)
        shown = subprocess.run(
            ["git", "show", f"{commit}:CHANGELOG.md"], cwd=TEMPLATE_ROOT, capture_output=True,
            text=True,
        )  # fmt: skip
        if version == "0.1.0":  # the CHANGELOG began with 0.2.0
            assert shown.returncode != 0
        else:
            at_its_commit = HEADING.search(shown.stdout)
            assert at_its_commit and at_its_commit[1] == version, (version, commit)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A work-in-hand clone after `.ci/tag-releases`; what the command printed."""
    clone = work_in_hand_clone(tmp_path_factory.mktemp("releases") / "clone")
    made = assert_succeeds([".ci/tag-releases"], clone).stdout
    return clone, made


def test_tag_releases_tags_every_version_at_its_commit_with_its_section(
    tagged: tuple[Path, str],
) -> None:
    clone, made = tagged
    head = git(clone, "rev-parse", "HEAD")
    assert made.split() == [f"v{version}" for version, _, _ in reversed(RELEASES)]
    for version, commit, section in RELEASES:
        tag = f"v{version}"
        assert git(clone, "cat-file", "-t", tag) == "tag", f"{tag} is not annotated"
        assert git(clone, "rev-parse", f"{tag}^{{commit}}") == (commit or head)
        message = git(clone, "for-each-ref", "--format=%(contents)", f"refs/tags/{tag}")
        assert message == section.strip("\n")
    again = assert_succeeds([".ci/tag-releases"], clone)
    assert again.stdout == "", "a second run made tags again"


def copy_at(clone: Path, tag: str, destination: Path) -> subprocess.CompletedProcess[str]:
    """`copier copy --vcs-ref TAG`, the plain command; for the versions that ran a task after
    rendering (git init and lock, up to 0.2.0), with --skip-tasks, the render being the test."""
    shown = git(clone, "show", f"{tag}:copier.yml")
    skip = ["--skip-tasks"] if "_tasks" in yaml.safe_load(shown) else []
    return subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", "--quiet", "--vcs-ref", tag,
         *skip, str(clone), str(destination)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_copier_copy_renders_each_tagged_version_and_records_its_tag(
    tagged: tuple[Path, str], tmp_path: Path
) -> None:
    clone, _ = tagged
    tags = [f"v{version}" for version, _, _ in RELEASES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        copies = dict(
            zip(tags, pool.map(lambda t: copy_at(clone, t, tmp_path / t), tags), strict=True)
        )
    for tag, copied in copies.items():
        assert copied.returncode == 0, f"{tag}:\n{copied.stdout}\n{copied.stderr}"
        answers = yaml.safe_load((tmp_path / tag / ".copier-answers.yml").read_text())
        assert answers["_commit"] == tag, answers
        assert (tmp_path / tag / "pyproject.toml").is_file()


def test_readmes_line_lists_the_versions_there_are_for_vcs_ref(tagged: tuple[Path, str]) -> None:
    """The template README's `git ls-remote` line, run as written against a clone whose tags
    `.ci/tag-releases` made, in place of the published repository."""
    clone, _ = tagged
    line = block_with(shell_blocks(TEMPLATE_ROOT / "README.md")["Update a project"], "ls-remote")
    published = "https://github.com/org/copier-twelve-factor"
    assert published in line, line
    listed = assert_succeeds(["bash", "-c", line.replace(published, str(clone))], clone).stdout
    refs = [row.split("\t")[1] for row in listed.splitlines()]
    assert sorted(refs) == sorted(f"refs/tags/v{version}" for version, _, _ in RELEASES), listed


def test_tag_releases_refuses_a_tag_elsewhere_or_an_older_version_naming_no_commit(
    tmp_path: Path,
) -> None:
    clone = work_in_hand_clone(tmp_path / "clone")
    git(clone, "tag", "v0.3.0", "HEAD")
    refused = subprocess.run([".ci/tag-releases"], cwd=clone, capture_output=True, text=True)
    assert refused.returncode == 1 and "v0.3.0 points at" in refused.stderr, refused.stderr
    assert git(clone, "tag", "--list") == "v0.3.0", "tags made before the refusal"
    git(clone, "tag", "--delete", "v0.3.0")
    changelog = clone / "CHANGELOG.md"
    changelog.write_text(re.sub(r"(?m)^## 0\.5\.0 \(.*\)$", "## 0.5.0", changelog.read_text()))
    refused = subprocess.run([".ci/tag-releases"], cwd=clone, capture_output=True, text=True)
    assert refused.returncode == 1 and "'## 0.5.0' names no commit" in refused.stderr
    assert git(clone, "tag", "--list") == ""


GH_STUB = """\
#!/usr/bin/env bash
# gh, as the release step calls it: each call's arguments and standard input kept in GH_CALLS.
n=$(find "$GH_CALLS" -name '*.args' | wc -l)
printf '%s\\n' "$@" >"$GH_CALLS/$n.args"
cat >"$GH_CALLS/$n.stdin"
"""


def test_release_workflow_step_tags_pushes_and_publishes_as_written(tmp_path: Path) -> None:
    """The step's text run as written: `${{ github.token }}` is a token of the test's, GitHub's
    URL (token included) leads to a bare repository here (git's url.*.insteadOf, set in the
    environment), and `gh` is a stand-in on PATH that records its calls."""
    clone = work_in_hand_clone(tmp_path / "clone")
    remote = tmp_path / "github" / f"{REPOSITORY}.git"
    assert_succeeds(["git", "init", "--quiet", "--bare", str(remote)], tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "gh").write_text(GH_STUB)
    (tmp_path / "bin" / "gh").chmod(0o755)
    calls = tmp_path / "gh-calls"
    calls.mkdir()
    machine = machine_environment()
    environment = {
        **machine,
        "PATH": f"{tmp_path / 'bin'}:{machine['PATH']}",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GH_CALLS": str(calls),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{tmp_path / 'github'}/.insteadOf",
        "GIT_CONFIG_VALUE_0": f"https://x-access-token:{TOKEN}@github.com/",
    }
    release = workflow("release.yml")
    context = {"github.token": TOKEN}
    results = run_steps(release, "release", clone, context, environment)
    assert [r.returncode for _, r in results] == [0], report(results)

    head = git(clone, "rev-parse", "HEAD")
    for version, commit, _ in RELEASES:
        assert git(remote, "rev-parse", f"v{version}^{{commit}}") == (commit or head)
        assert git(remote, "cat-file", "-t", f"v{version}") == "tag"
    published = []
    for number in range(len(RELEASES)):
        arguments = (calls / f"{number}.args").read_text().splitlines()
        tag = arguments[2]
        published.append(tag)
        latest = "true" if tag == f"v{RELEASES[0][0]}" else "false"
        assert arguments == [
            "release", "create", tag, "--repo", REPOSITORY, "--verify-tag", "--title", tag,
            "--notes-file", "-", f"--latest={latest}",
        ]  # fmt: skip
        (section,) = [s for v, _, s in RELEASES if f"v{v}" == tag]
        assert (calls / f"{number}.stdin").read_text() == section.split("\n", 1)[1].strip(
            "\n"
        ) + "\n"
    assert published == [f"v{version}" for version, _, _ in reversed(RELEASES)]

    again = run_steps(release, "release", clone, context, environment)
    assert [r.returncode for _, r in again] == [0], report(again)
    assert len(list(calls.glob("*.args"))) == len(RELEASES), "published again"
