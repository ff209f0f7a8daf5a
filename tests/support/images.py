"""Build the project's images from its Dockerfiles, with Docker or without it.

With a Docker engine, `docker build`, and `--kind NAME` loads the result into that
kind cluster. Without one, buildah builds the same Dockerfiles (`--isolation
chroot`), on a Debian bookworm base made here with mmdebstrap where the public base
image cannot be pulled. Python dependencies come from a wheelhouse built on the
host from the versions in uv.lock, so an image build needs no network but the
Debian mirror (for Redis). Each image is labelled with the hash of everything it is
built from; a rerun with no change finds it and skips the build.

    hack/images/build [ROLE...|all] [--kind NAME] [--test-cluster DIR | --containerd SOCKET]
                      [--values FILE]
    hack/images/build --context DIR --tag NAME:TAG [--kind NAME | --containerd SOCKET ...]

`--context` builds a model-in-image server (`model_image`) instead of the roles.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.markers import Marker, default_environment

from tests.support.dataplane import dataplane_binary

__all__ = [
    "RECIPES",
    "Image",
    "Recipe",
    "archived",
    "build",
    "chart_values",
    "import_into_containerd",
]

REPO = Path(__file__).resolve().parents[2]
STAGE = REPO / ".build"  # inside the build context, ignored by git
CACHE = Path(
    os.environ.get("MLPATTERNS_IMAGES_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlpatterns/images"
)
LABEL = "io.mlpatterns.inputs"
PYTHON_SOURCES = ("pyproject.toml", "README.md", "platform", "pipelines")
BASE_PACKAGES = ("python3", "python3-venv", "passwd", "ca-certificates")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BOOKWORM_PYTHON = {"python_full_version": "3.11.2", "python_version": "3.11"}


@dataclass(frozen=True)
class Recipe:
    """One image: its Dockerfile and what goes into the build context for it."""

    name: str
    dockerfile: str
    python_extra: str | None = None  # installs mlpatterns[extra] from the wheelhouse
    wheelhouse: str = "wheelhouse"  # under .build: extras that conflict get their own
    binary: str | None = None  # a program staged into .build/bin first
    base_arg: str | None = None  # the build argument naming the base image

    def tag(self, inputs: str) -> str:
        version = _project_version() if self.python_extra else inputs[:12]
        return f"{self.name}:{version}"


RECIPES = {
    "serving": Recipe(
        "mlpatterns-serving",
        "serving.Dockerfile",
        python_extra="serving",
        binary="mlpatterns-dataplane",  # the gateway's compiled data plane
        base_arg="PYTHON_IMAGE",
    ),
    "operator": Recipe(
        "mlpatterns-operator",
        "operator.Dockerfile",
        python_extra="operator",
        base_arg="PYTHON_IMAGE",
    ),
    "training": Recipe(
        "mlpatterns-training",
        "training.Dockerfile",
        python_extra="training",
        base_arg="PYTHON_IMAGE",
    ),
    # seldon-core 1.17.1 pins numpy 1: its extra conflicts with the others (uv.lock)
    "seldon": Recipe(
        "mlpatterns-seldon",
        "seldon.Dockerfile",
        python_extra="seldon",
        wheelhouse="wheelhouse-seldon",
        base_arg="PYTHON_IMAGE",
    ),
    "redis": Recipe("mlpatterns-redis", "redis.Dockerfile", base_arg="DEBIAN_IMAGE"),
    "minio": Recipe("mlpatterns-minio", "minio.Dockerfile", binary="minio"),
    # the real node's own: kind brings them all
    "coredns": Recipe("mlpatterns-coredns", "coredns.Dockerfile", binary="coredns"),
    "pause": Recipe("mlpatterns-pause", "pause.Dockerfile", binary="pause"),
    "local-path": Recipe(
        "mlpatterns-local-path", "local-path.Dockerfile", binary="local-path-provisioner"
    ),
    "metrics-server": Recipe(
        "mlpatterns-metrics-server", "metrics-server.Dockerfile", binary="metrics-server"
    ),
    "local-path-helper": Recipe(
        "mlpatterns-local-path-helper", "local-path-helper.Dockerfile", base_arg="DEBIAN_IMAGE"
    ),
}
USER_ROLES = ("serving", "operator", "training", "seldon", "redis", "minio")


@dataclass(frozen=True)
class Image:
    role: str
    reference: str  # name:tag, as a pod spec names it
    inputs: str  # the hash of everything it was built from
    archive: Path | None = None  # a docker-archive of it (buildah builds)
    size: int = 0  # bytes of its uncompressed layers

    @property
    def containerd_name(self) -> str:
        """The reference as containerd and kubelet spell it in full."""
        first, _, rest = self.reference.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return self.reference  # it names its registry
        return f"docker.io/{self.reference}" if rest else f"docker.io/library/{self.reference}"


def _project_version() -> str:
    init = (REPO / "platform/mlpatterns/__init__.py").read_text()
    match = re.search(r'^__version__ = "(.+)"$', init, re.MULTILINE)
    if match is None:
        raise RuntimeError("platform/mlpatterns/__init__.py has no __version__")
    return match.group(1)


def _run(argv: Sequence[str], **kwargs: object) -> str:
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed:\n{tail}")
    return str(out.stdout)


def _log(message: str) -> None:
    print(f"[hack/images] {message}", file=sys.stderr, flush=True)


def _hash_files(paths: Iterable[Path], digest: hashlib._Hash, base: Path = REPO) -> None:
    """Each file's name (relative to `base`) and bytes, folders walked in order."""
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(base)).encode())
                digest.update(path.read_bytes())


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


# ---- what goes into the context ---------------------------------------------


def tools_bin() -> Path:
    return Path(_run(["bash", str(REPO / "hack/tools"), "path"]).strip())


def stage_binary(name: str) -> Path:
    """Put `name` into .build/bin: a tool hack/tools built, the compiled data plane
    hack/dataplane built, or pause compiled from source."""
    tool = {"local-path-provisioner": "local-path"}.get(name, name)
    target = STAGE / "bin" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if name == "mlpatterns-dataplane":
        built = dataplane_binary()
        if not target.exists() or target.read_bytes() != built.read_bytes():
            shutil.copy2(built, target)
        return target
    if name == "pause":
        source = Path(_run(["bash", str(REPO / "hack/tools"), "pause"]).strip())
        if not target.exists():
            _run(["gcc", "-Os", "-static", "-Wall", "-o", str(target), str(source)])
            _run(["strip", str(target)])
        return target
    _run(["bash", str(REPO / "hack/tools"), "build", tool])
    built = (tools_bin() / name).resolve()
    if not target.exists() or target.read_bytes() != built.read_bytes():
        shutil.copy2(built, target)
    return target


def stage_wheelhouse(name: str = "wheelhouse") -> Path:
    """Wheels for the dependencies of the roles that share wheelhouse `name`, at the
    versions in uv.lock, and mlpatterns'."""
    wheelhouse = STAGE / name
    lock = hashlib.sha256((REPO / "uv.lock").read_bytes()).hexdigest()[:16]
    stamp = wheelhouse / f".uv.lock-{lock}"
    uv = Path(sys.executable).parent / "uv"
    if not stamp.exists():
        _log(f"building .build/{name} from uv.lock")
        shutil.rmtree(wheelhouse, ignore_errors=True)
        wheelhouse.mkdir(parents=True)
        requirements = STAGE / f"{name}.txt"
        extras = [
            f"--extra={r.python_extra}"
            for r in RECIPES.values()
            if r.python_extra and r.wheelhouse == name
        ]
        _run(
            [str(uv), "export", "--frozen", "--no-dev", "--no-emit-project", *extras,
             f"--output-file={requirements}"],
            cwd=REPO,
        )  # fmt: skip
        requirements.write_text(for_image_pythons(requirements.read_text()))
        _run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--require-hashes",
             "--disable-pip-version-check", "-r", str(requirements), "-w", str(wheelhouse)],
        )  # fmt: skip
        stamp.touch()
    for old in wheelhouse.glob("mlpatterns-*.whl"):
        old.unlink()
    _run([str(uv), "build", "--wheel", "--quiet", f"--out-dir={wheelhouse}", str(REPO)])
    return wheelhouse


def for_image_pythons(requirements: str) -> str:
    """Keep each requirement whose marker holds for this Python or the Debian base's.

    The host builds the wheelhouse, but an image's Python may differ in its patch
    release (bookworm's python3 is 3.11.2), and uv.lock has markers on exactly that
    (`async-timeout ; python_full_version < '3.11.3'`). Markers are evaluated here
    for both and dropped, so pip on the host fetches what either one installs.
    """
    environments = [default_environment(), {**default_environment(), **BOOKWORM_PYTHON}]
    kept = []
    for entry in requirements.replace("\\\n", " ").splitlines():
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        requirement, _, rest = entry.partition(" ; ")
        if rest:
            marker, _, hashes = rest.partition(" --hash")
            if not any(Marker(marker.strip()).evaluate(env) for env in environments):
                continue
            entry = f"{requirement} --hash{hashes}" if hashes else requirement
        kept.append(" ".join(entry.split()))
    return "\n".join(kept) + "\n"


# ---- buildah -------------------------------------------------------------------


def buildah(*args: str) -> str:
    storage = [
        f"--root={CACHE / 'storage'}",
        f"--runroot={CACHE / 'run'}",
        "--storage-driver=overlay",
    ]
    return _run(["buildah", *storage, *args])


def local_base() -> str:
    """A Debian bookworm base with python3, made with mmdebstrap; built once, then reused."""
    argv = [
        "mmdebstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
        "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*",
        "bookworm",
    ]  # fmt: skip
    key = hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:12]
    reference = f"localhost/mlpatterns-base:bookworm-{key}"
    if _image_labels(reference) is not None:
        return reference
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = CACHE / f"base-{key}.tar"
    if not rootfs.exists():
        _log(f"making the Debian bookworm base with mmdebstrap ({', '.join(BASE_PACKAGES)})")
        partial = rootfs.with_suffix(".partial")
        _run([*argv, str(partial), DEBIAN_MIRROR])
        partial.rename(rootfs)
    container = buildah("from", "scratch").strip()
    try:
        buildah("add", container, str(rootfs), "/")
        buildah(
            "config",
            "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--cmd=/bin/sh",
            container,
        )
        buildah("commit", "--quiet", container, reference)
    finally:
        buildah("rm", container)
    return reference


def _image_labels(reference: str) -> dict[str, str] | None:
    try:
        info = json.loads(buildah("inspect", "--type=image", reference))
    except RuntimeError:
        return None
    labels: dict[str, str] = info.get("OCIv1", {}).get("config", {}).get("Labels") or {}
    return labels


def _inputs_hash(recipe: Recipe, base: str | None, staged: Path | None) -> str:
    digest = hashlib.sha256()
    digest.update((REPO / "hack/images" / recipe.dockerfile).read_bytes())
    digest.update((base or "").encode())
    if base:
        digest.update(
            buildah("inspect", "--type=image", "--format={{.FromImageID}}", base).encode()
        )
    if recipe.python_extra:
        _hash_files([REPO / p for p in PYTHON_SOURCES] + [REPO / "uv.lock"], digest)
    if staged is not None:
        digest.update(staged.read_bytes())
    return digest.hexdigest()


def build_with_buildah(role: str) -> Image:
    recipe = RECIPES[role]
    base = local_base() if recipe.base_arg else None
    staged = stage_binary(recipe.binary) if recipe.binary else None
    inputs = _inputs_hash(recipe, base, staged)
    reference = recipe.tag(inputs)
    labels = _image_labels(reference)
    if labels is None or labels.get(LABEL) != inputs:
        started = time.monotonic()
        if recipe.python_extra:
            stage_wheelhouse(recipe.wheelhouse)
        args = [f"--build-arg={recipe.base_arg}={base}"] if recipe.base_arg else []
        buildah(
            "bud", "--isolation=chroot", "--layers=false", "--quiet",
            f"--file={REPO / 'hack/images' / recipe.dockerfile}",
            f"--label={LABEL}={inputs}", f"--tag={reference}", *args, str(REPO),
        )  # fmt: skip
        _log(f"built {reference} in {time.monotonic() - started:.0f}s")
    return archived(role, reference, inputs)


def archived(role: str, reference: str, inputs: str) -> Image:
    """`reference` as a docker-archive in the cache (written unless there with these
    inputs; older archives of `role` removed), to import into a containerd."""
    archive = CACHE / "archives" / f"{role}-{inputs[:16]}.tar"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        for old in archive.parent.glob(f"{role}-*.tar"):
            old.unlink()
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        buildah("push", "--quiet", reference, f"docker-archive:{partial}:{reference}")
        partial.rename(archive)
    return Image(role, reference, inputs, archive, archive.stat().st_size)


def import_into_containerd(socket: Path, images: Iterable[Image]) -> None:
    """Import each image's archive unless containerd holds it with the same inputs."""
    ctr = ["ctr", f"--address={socket}", "--namespace=k8s.io"]
    held = _run([*ctr, "images", "list"])
    for image in images:
        if image.archive is None:
            raise RuntimeError(f"{image.reference} has no archive to import")
        marker = f"{LABEL}={image.inputs}"
        if any(image.containerd_name in line and marker in line for line in held.splitlines()):
            continue
        _run([*ctr, "images", "import", str(image.archive)])
        _run([*ctr, "images", "label", image.containerd_name, marker])


# ---- docker ----------------------------------------------------------------------


def build_with_docker(role: str, kind_cluster: str | None) -> Image:
    recipe = RECIPES[role]
    staged = stage_binary(recipe.binary) if recipe.binary else None
    if recipe.python_extra:
        stage_wheelhouse(recipe.wheelhouse)
    inputs = _inputs_hash(recipe, None, staged)
    reference = recipe.tag(inputs)
    dockerfile = REPO / "hack/images" / recipe.dockerfile
    _run(["docker", "build", "-f", str(dockerfile), "-t", reference, str(REPO)])
    if kind_cluster:
        _run(["kind", "load", "docker-image", reference, "--name", kind_cluster])
    return Image(role, reference, inputs)


def build(roles: Sequence[str], kind_cluster: str | None = None) -> list[Image]:
    docker = _docker_available()
    if kind_cluster and not docker:
        raise RuntimeError("--kind needs a Docker engine; without one, use --containerd")
    images = []
    for role in roles:
        image = build_with_docker(role, kind_cluster) if docker else build_with_buildah(role)
        images.append(image)
    return images


def chart_values(images: Iterable[Image]) -> dict[str, dict[str, Any]]:
    """The platform chart's values that name these images (`helm install -f`)."""
    where = {
        "serving": ("image", "serving"),
        "operator": ("image", "operator"),
        "minio": ("minio", "image"),
        "redis": ("redis", "image"),
        "training": ("image", "training"),
        "seldon": ("image", "seldon"),
    }
    values: dict[str, dict[str, Any]] = {}
    for image in images:
        if image.role in where:
            section, key = where[image.role]
            repository, _, tag = image.reference.rpartition(":")
            values.setdefault(section, {})[key] = {"repository": repository, "tag": tag}
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/images/build", description=__doc__)
    parser.add_argument("roles", nargs="*", default=["all"], help=", ".join(RECIPES) + ", all")
    parser.add_argument("--kind", metavar="NAME", help="load into this kind cluster (Docker)")
    parser.add_argument("--containerd", type=Path, metavar="SOCKET", help="import into it")
    parser.add_argument(
        "--test-cluster",
        type=Path,
        metavar="DIR",
        help="import into the real node of `hack/test-cluster up --real-node --dir DIR`",
    )
    parser.add_argument(
        "--values", type=Path, metavar="FILE", help="write the platform chart's image values"
    )
    parser.add_argument(
        "--context",
        type=Path,
        metavar="DIR",
        help="instead: the model-in-image server of `mlpatterns build-context ... -o DIR`",
    )
    parser.add_argument("--tag", metavar="NAME:TAG", help="the --context image's reference")
    args = parser.parse_args(argv)
    roles = list(USER_ROLES) if args.roles == ["all"] else args.roles
    unknown = sorted(set(roles) - set(RECIPES))
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if args.context is not None and not args.tag:
        parser.error("--context needs --tag, e.g. --tag registry.local/mlpatterns/iris:candidate")
    if args.context is not None:
        from tests.support.model_image import build_model_image

        images = [build_model_image(args.context, args.tag, args.kind)]
    else:
        images = build(roles, args.kind)
    if args.test_cluster:
        from tests.support.node_config import containerd_socket

        args.containerd = containerd_socket(args.test_cluster / "node")
    if args.containerd:
        import_into_containerd(args.containerd, images)
    if args.values:
        args.values.parent.mkdir(parents=True, exist_ok=True)
        args.values.write_text(yaml.safe_dump(chart_values(images), sort_keys=False))
    for image in images:
        size = f"{image.size / 2**20:7.1f} MiB" if image.size else ""
        print(f"{image.reference:<45} {size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
