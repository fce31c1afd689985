# Sourced by the benchmark scripts: bench_setup DIR builds rex-worker (Release) in DIR and starts
# throwaway Redis and PostgreSQL (scripts/services.sh), stopped by PID when the script exits.
# Run from the project root.
bench_setup() {
  cmake -S . -B "$1" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$1" -j2 >/dev/null
  eval "$(scripts/services.sh start)" >/dev/null
  trap 'scripts/services.sh stop "$REX_SERVICES_DIR"' EXIT
}
