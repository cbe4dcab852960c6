#!/usr/bin/env bash
# Run jobledger's whole test suite on a fresh Debian/Ubuntu machine.
#
# Installs what the tests need (Debian's redis-server, chromium and chromium-driver for
# the dashboard's browser test; as root also the one-node
# SLURM cluster with accounting, via scripts/slurm-cluster.sh), creates .venv with
# the package and its test extras, runs ruff and mypy, then pytest.
# Extra arguments go to pytest (e.g. ./scripts/test.sh -k tracker -x).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }

need_apt=()
[ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
# The dashboard's browser test: Debian's Chromium and the ChromeDriver of the same build
# (as root; without them the test is skipped, and under CI=true it fails).
browser=()
[ -x /usr/bin/chromium ] || browser+=(chromium)
[ -x /usr/bin/chromedriver ] || browser+=(chromium-driver)
if ((${#browser[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    need_apt+=("${browser[@]}")
  else
    echo "test.sh: no ${browser[*]} (not root): the dashboard's browser test is skipped" >&2
  fi
fi
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: need ${need_apt[*]}: run as root or: sudo apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  say "installing ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "$(id -u)" -eq 0 ]; then
  say "bringing up the one-node SLURM cluster"
  if ! bash scripts/slurm-cluster.sh up; then
    if [ "${CI:-}" = "true" ]; then
      echo "test.sh: the SLURM cluster did not come up, and CI requires it" >&2
      exit 1
    fi
    echo "test.sh: no SLURM cluster; tests marked slurm will be skipped" >&2
  fi
else
  echo "test.sh: not root: SLURM tests are skipped unless a cluster already runs" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
say "installing jobledger and its test tools into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# An editable install leaves src/ uncompiled, and where PYTHONDONTWRITEBYTECODE is set
# (as on this project's machines) every jobledger process the suite starts
# compiled the package again (about 30 ms each): compile it once, Python reads the .pyc.
.venv/bin/python -m compileall -q src tests benchmarks >/dev/null
say "ruff"
.venv/bin/ruff check src tests benchmarks examples scripts
.venv/bin/ruff format --check src tests benchmarks examples scripts
say "mypy"
.venv/bin/mypy
say "pytest"
.venv/bin/python -m pytest "$@"
