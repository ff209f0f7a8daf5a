"""Training code in serving: the serving images (Dockerfiles) and dependency sets
(pyproject extras, requirements files) that carry training libraries or code.

An image is a serving image when it installs a serving stack (a model server
framework, or mlpatterns' serving extra) or starts a server; a dependency set is a
serving one when its name says so or it lists a serving stack."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterable, Iterator

import dockerfile
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlpatterns.lint.rules import Finding
from mlpatterns.lint.sources import line_of_text

__all__ = [
    "SERVING_PACKAGES",
    "TRAINING_PACKAGES",
    "dockerfile_findings",
    "pyproject_findings",
    "requirements_findings",
]

TRAINING_PACKAGES = frozenset(
    {
        "scikit-learn", "sklearn", "torch", "pytorch-lightning", "lightning", "tensorflow",
        "keras", "xgboost", "lightgbm", "catboost", "kfp", "skl2onnx", "optuna", "hyperopt",
        "ray", "jax", "flax", "transformers", "datasets", "accelerate", "deepspeed",
    }
)  # fmt: skip
SERVING_PACKAGES = frozenset(
    {
        "seldon-core", "mlserver", "kserve", "bentoml", "torchserve", "uvicorn", "gunicorn",
        "fastapi", "flask", "starlette", "tritonserver",
    }
)  # fmt: skip
SERVER_COMMANDS = frozenset(
    {"serve", "uvicorn", "gunicorn", "tritonserver", "mlserver", "torchserve",
     "seldon-core-microservice", "bentoml"}
)  # fmt: skip
INSTALLERS = ("pip", "pip3", "uv", "conda", "mamba", "micromamba", "poetry")
OPTIONS_WITH_VALUES = frozenset(
    {"-r", "--requirement", "-c", "--constraint", "-f", "--find-links", "-i", "--index-url",
     "--extra-index-url", "-t", "--target", "--prefix", "--root", "-e", "--editable", "-p",
     "--python", "-n", "--name", "--channel"}
)  # fmt: skip
TRAINING_CODE = re.compile(r"^(train|training)([_-][\w.-]*)?(\.py)?/?$")
_SEGMENTS = re.compile(r"&&|\|\||;|\|")

FIX = (
    "install only what serving runs (mlpatterns[serving] serves ONNX, with no training "
    "library) and build training in an image of its own"
)


def _requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _training(requirement: Requirement) -> str | None:
    """What in `requirement` is training: a training library, or a training extra."""
    name = canonicalize_name(requirement.name)
    if name in TRAINING_PACKAGES:
        return name
    extras = sorted(e for e in requirement.extras if "train" in e)
    return f"{requirement.name}[{','.join(extras)}]" if extras else None


def _serving_package(requirement: Requirement) -> bool:
    return canonicalize_name(requirement.name) in SERVING_PACKAGES


def _serving(requirement: Requirement) -> bool:
    """A serving stack, or some project's serving extra (mlpatterns[serving])."""
    return _serving_package(requirement) or any("serv" in e for e in requirement.extras)


def _installed(command: str) -> Iterator[Requirement]:
    """The requirements a shell command installs with pip, uv, conda or poetry."""
    for segment in _SEGMENTS.split(command):
        try:
            words = shlex.split(segment)
        except ValueError:
            continue
        if not any(word.rsplit("/", 1)[-1] in INSTALLERS for word in words[:3]):
            continue
        if "install" not in words and "add" not in words:
            continue
        start = words.index("install") if "install" in words else words.index("add")
        skip = False
        for word in words[start + 1 :]:
            if skip:
                skip = False
            elif word.startswith("-"):
                skip = word in OPTIONS_WITH_VALUES
            elif (found := _requirement(word)) is not None:
                yield found


def dockerfile_findings(path: str, text: str) -> list[Finding]:
    """Training libraries or code in a Dockerfile that builds a serving image."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError:
        return []
    serving = False
    training: list[tuple[int, str]] = []
    for command in commands:
        if command.cmd in ("ENTRYPOINT", "CMD"):
            words = [w for value in command.value for w in value.split()]
            serving = serving or any(w.rsplit("/", 1)[-1] in SERVER_COMMANDS for w in words)
        elif command.cmd == "RUN":
            for requirement in _installed(" ".join(command.value)):
                serving = serving or _serving(requirement)
                what = _training(requirement)
                if what:
                    training.append((command.start_line, f"installs {what}"))
        elif command.cmd in ("COPY", "ADD"):
            sources = [v for v in command.value[:-1] if not v.startswith("--")]
            code = [s for s in sources if TRAINING_CODE.match(s.rsplit("/", 1)[-1] or s)]
            if code:
                training.append((command.start_line, f"copies training code {', '.join(code)}"))
    if not serving:
        return []
    return [
        Finding(
            "training-code-in-serving",
            path,
            line,
            f"this serving image {what}: training code in a serving image enlarges it, "
            "slows its start and widens what can break or be attacked",
            FIX,
        )
        for line, what in training
    ]


def _is_serving_set(name: str, requirements: Iterable[Requirement]) -> bool:
    # by name, or by a server framework it lists; an aggregate of a project's own
    # extras (dev = "mlpatterns[serving,training]") is not a serving set
    return "serv" in name or any(_serving_package(r) for r in requirements)


def _set_findings(
    path: str, text: str, name: str, requirements: Iterable[str], after: int = 0
) -> list[Finding]:
    """Training libraries among `requirements`, a serving dependency set called `name`."""
    parsed = [(raw, _requirement(raw)) for raw in requirements]
    valid = [(raw, found) for raw, found in parsed if found is not None]
    findings = []
    for raw, found in valid:
        what = _training(found)
        if what:
            findings.append(
                Finding(
                    "training-code-in-serving",
                    path,
                    line_of_text(text, raw, after),
                    f"the serving dependency set {name!r} lists {what}, a training library",
                    FIX,
                )
            )
    return findings


def pyproject_findings(path: str, text: str) -> list[Finding]:
    """Training libraries in a pyproject's serving extras (and the base dependencies
    every extra installs)."""
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return []
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[Finding] = []
    serving_extras = []
    for name, requirements in extras.items():
        valid = [r for r in map(_requirement, requirements) if r is not None]
        if _is_serving_set(name, valid):
            serving_extras.append(name)
            start = line_of_text(text, f"{name} = [")
            found.extend(_set_findings(path, text, name, requirements, start))
    if serving_extras:
        label = f"dependencies (installed with {', '.join(serving_extras)})"
        start = line_of_text(text, "dependencies = [")
        found.extend(_set_findings(path, text, label, project.get("dependencies", []), start))
    return found


def requirements_findings(path: str, text: str, name: str) -> list[Finding]:
    """Training libraries in a serving requirements file."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    requirements = [line for line in lines if line and not line.startswith("-")]
    valid = [r for r in map(_requirement, requirements) if r is not None]
    if not _is_serving_set(name, valid):
        return []
    return _set_findings(path, text, name, requirements)
