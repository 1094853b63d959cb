"""The app image of a code combination, built once per test process from a checkout as a user's
holds it, for the image tests and compose's tests alike.

Both render the combination with a slug of its own (compose's `image:` is SLUG:local, so that
parallel tests of other combinations tag other images) and share a pytest-xdist group, so the
one build serves both. The build context is a copy of the project with what a user's checkout
has beside the code (a git repository, a `.env` with a secret, a local virtual environment),
none of which may reach the image: the image tests check that.
"""

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.compose_images import inspect
from helpers.containers import Engine
from helpers.matrix import combination_id

# Put in the build context as a user's checkout has them; none may reach the image.
LEAK_CANARIES = {".env": "SECRET_KEY=canary-from-the-build-context\n", ".venv/CANARY": "x"}


@dataclass
class Built:
    reference: str
    seconds: float  # the build's, in this test process
    release: str  # passed as CI passes its commit (--build-arg RELEASE=...)


_built: dict[Path, Built] = {}


def slug(answers: dict[str, str]) -> str:
    return combination_id(answers).replace(".", "-")


def checkout(project: Path) -> Path:
    """A copy of the project as a user's checkout holds it; the project stays untouched."""
    context = project.parent / f"{project.name}-image-context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(project, context, ignore=shutil.ignore_patterns(".venv"))
    for relative, text in LEAK_CANARIES.items():
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        (context / relative).write_text(text)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "checkout"]):
        subprocess.run(["git", *command], cwd=context, check=True)
    return context


def app_image(engine: Engine, project: Path, answers: dict[str, str]) -> Built:
    """The project's image, tagged as its compose.yaml names it (SLUG:local)."""
    if project not in _built:
        earlier = inspect(engine, f"{slug(answers)}:local", "{{ .Id }}")
        start = time.perf_counter()
        # As CI passes its commit; one value per tag, since another test process may build the
        # same tag (compose's tests), and a run by tag gets whichever build came last.
        release = hashlib.sha1(slug(answers).encode()).hexdigest()
        reference = engine.build(checkout(project), f"{slug(answers)}:local", {"RELEASE": release})
        _built[project] = Built(reference, time.perf_counter() - start, release)
        print(f"{reference}: built in {_built[project].seconds:.1f} s")
        if earlier and earlier != inspect(engine, reference, "{{ .Id }}"):
            engine.podman("rmi", earlier)  # an earlier run's, nameless now; kept while in use
    return _built[project]
