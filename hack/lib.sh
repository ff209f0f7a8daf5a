# Shared by the hack/ scripts: where the repository and its virtual environment are,
# and how to bring that environment up to date. Source it; it defines functions only.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MLPATTERNS_VENV:-$repo/.venv}

say() { printf '\033[1m[mlpatterns]\033[0m %s\n' "$*" >&2; }

# ensure_venv EXTRAS: create the virtual environment when missing and install the
# project (editable) with EXTRAS (comma-separated) at exactly the versions of uv.lock.
# `--locked` fails when the lock no longer matches pyproject.toml (run `uv lock`);
# `--inexact` keeps uv itself, which the lock does not list.
ensure_venv() {
  local extras=$1 extra
  local -a flags=()
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    python3 -m venv "$venv"
  fi
  if [ ! -x "$venv/bin/uv" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.5"
  fi
  IFS=, read -ra picked <<<"$extras"
  for extra in "${picked[@]}"; do flags+=(--extra "$extra"); done
  say "installing mlpatterns[$extras] into $venv from uv.lock"
  (cd "$repo" && UV_PROJECT_ENVIRONMENT="$venv" "$venv/bin/uv" sync --quiet --locked --inexact \
    --python "$venv/bin/python" "${flags[@]}")
}
