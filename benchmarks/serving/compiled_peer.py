"""Bare forwarders in compiled languages, for the gateway benchmark: what a data plane
built on Go's net/http, on fasthttp (Go), or on hyper (Rust, one thread) costs here
before it does any of the gateway's own work (the sources are in `compiled_peers/`).

They are built with the machine's Go (from the module proxy) and cargo (from
crates.io, the versions in Cargo.lock), once, into
~/.cache/mlpatterns/peers/compiled-<digest of the sources>/.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

__all__ = ["PEERS", "compiled_peer"]

SOURCES = Path(__file__).with_name("compiled_peers")
PEERS = ("nethttp", "fasthttp", "hyper")


def compiled_peer(name: str) -> str:
    """The path of peer `name` (one of PEERS), built when missing."""
    if name not in PEERS:
        raise ValueError(f"no compiled peer {name!r}: one of {', '.join(PEERS)}")
    digest = hashlib.sha256()
    for path in sorted(SOURCES.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(SOURCES).as_posix().encode() + path.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    binary = cache / "mlpatterns" / "peers" / f"compiled-{digest.hexdigest()[:12]}" / name
    if not binary.exists():
        _build(name, binary)
    return str(binary)


def _build(name: str, binary: Path) -> None:
    if name == "hyper":
        target = binary.parent / "target"
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "--target-dir", str(target)],
            cwd=SOURCES / name,
            check=True,
        )
        (target / "release" / "hyper-forwarder").rename(binary)
        return
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    env.setdefault("GOTOOLCHAIN", "local")
    subprocess.run(
        ["go", "build", "-trimpath", "-o", str(binary), f"./{name}"],
        cwd=SOURCES,
        env=env,
        check=True,
    )
