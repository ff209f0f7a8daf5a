# Shared by the hack/ scripts: where the repository and its virtual environment are,
# and how to bring that environment up to date. Source it; it defines functions only.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MLPATTERNS_VENV:-$repo/.venv}

say() { printf '\033[1m[mlpatterns]\033[0m %s\n' "$*" >&2; }

# ensure_venv EXTRAS: create the virtual environment when missing and install the
# project (editable) with EXTRAS. uv, from PyPI, makes the repeat install take seconds.
ensure_venv() {
  local extras=$1
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    python3 -m venv "$venv"
  fi
  if [ ! -x "$venv/bin/uv" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.5"
  fi
  say "installing mlpatterns[$extras] into $venv"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -e "$repo[$extras]"
}
