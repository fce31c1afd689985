#!/usr/bin/env bash
# clang-format over the project's C sources: --check reports files that differ, else formats them.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- 'core/*.c' 'core/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')
command -v clang-format >/dev/null || { echo "format: clang-format is missing (scripts/deps.sh)" >&2; exit 1; }
if [[ "${1:-}" == "--check" ]]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then echo "format: $f needs clang-format"; bad=1; fi
  done
  exit $bad
fi
clang-format -i "${files[@]}"
