"""nginx doing the gateway's job, for the gateway benchmark: `proxy_pass` to a
keepalive upstream, for the shadow, `mirror` with `mirror_request_body on` (nginx
holds the main request until its mirror answers; the gateway must not), and for a
split, weighted round robin between two upstreams.

nginx is Debian's (`apt-get install nginx-light`, done here when it is missing); it
runs in the foreground with its files in a folder of its own, on loopback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["ensure_nginx", "nginx_argv", "write_nginx_config"]

PROXY = """proxy_http_version 1.1;
            proxy_set_header Connection "";"""


def ensure_nginx() -> str:
    """The nginx binary, installed from Debian's packages if missing."""
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if not found:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx-light"],
            check=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        found = "/usr/sbin/nginx"
    return str(found)


def write_nginx_config(
    folder: Path, port: int, primary: str, mirror: str | None = None, tenth: str | None = None
) -> Path:
    """nginx.conf in `folder`: listen on `port`, proxy to `primary` (host:port), copy
    every request to `mirror` when given, and send every tenth request to `tenth`
    instead when given (weighted round robin)."""
    servers = (
        f"server {primary} weight=9; server {tenth} weight=1;" if tenth else (f"server {primary};")
    )
    folder.mkdir(parents=True, exist_ok=True)
    mirrored = "mirror /mirror;\n            mirror_request_body on;" if mirror else ""
    mirror_location = (
        f"""location = /mirror {{
            internal;
            proxy_pass http://shadow$request_uri;
            {PROXY}
        }}"""
        if mirror
        else ""
    )
    shadow_upstream = f"upstream shadow {{ server {mirror}; keepalive 64; }}" if mirror else ""
    temp = "\n    ".join(
        f"{kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = folder / "nginx.conf"
    config.write_text(
        f"""worker_processes 1;
error_log {folder / "error.log"} warn;
pid {folder / "nginx.pid"};
events {{ worker_connections 1024; }}
http {{
    access_log off;
    {temp}
    upstream primary {{ {servers} keepalive 64; }}
    {shadow_upstream}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://primary;
            {PROXY}
            {mirrored}
        }}
        {mirror_location}
    }}
}}
"""
    )
    return config


def nginx_argv(nginx: str, config: Path) -> list[str]:
    return [nginx, "-p", str(config.parent), "-c", str(config), "-g", "daemon off;"]
