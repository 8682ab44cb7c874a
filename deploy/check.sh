#!/usr/bin/env bash
# Check deploy/: the deploy tests (render every overlay, validate it, parse every query), then —
# where promtool is installed (`apt-get install prometheus`) — `promtool check rules` on the
# alert rules and on every dashboard query, and the alerts' unit tests (prometheus/tests.yml).
#
#   deploy/check.sh            (after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never
uv=${UV:-.tools/bin/uv}
[[ -x $uv ]] || make install
run=("$uv" run --frozen --no-sync)

echo "== tests/deploy"
"${run[@]}" pytest -q -p no:cacheprovider tests/deploy

if ! command -v promtool >/dev/null; then
    echo "== promtool is not installed: skipped promtool check/test rules (apt-get install prometheus)"
    exit 0
fi

echo "== promtool check rules deploy/prometheus/herald.rules.yml"
promtool check rules deploy/prometheus/herald.rules.yml

echo "== promtool test rules deploy/prometheus/tests.yml"
(cd deploy/prometheus && promtool test rules tests.yml)

echo "== promtool check rules: the dashboard's queries, as recording rules"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${run[@]}" python - "$tmp/dashboard.rules.yml" <<'PY'
import sys

import yaml

from tests.deploy.test_monitoring import dashboard_queries

rules = [
    {"record": f"herald_dashboard:query_{number}", "expr": expr}
    for number, (_, expr) in enumerate(dashboard_queries())
]
with open(sys.argv[1], "w") as out:
    yaml.safe_dump({"groups": [{"name": "herald-dashboard", "rules": rules}]}, out)
PY
promtool check rules "$tmp/dashboard.rules.yml"
