#!/usr/bin/env bash
# The installed package on a GPU machine without network: installs the tarball
# into a new project (its dependencies from a Bun cache filled beforehand), lets
# the first load build the CUDA library into an empty per-user cache, and loads
# a model with --verify; times that first use against the next load.
#
#   scripts/gpu-package-check.sh prepare [DIR]
#       here, with the registry: packs the package into DIR (default
#       .gpu/package) and fills DIR/bun-cache with its dependencies.
#   scripts/gpu-package-check.sh run [DIR] [MODEL]
#       on the GPU machine, offline (needs bun and nvcc): MODEL is a .gguf;
#       default: the synthetic Qwen2.5-7B Q4_K_M in $GGUF_VRAM_FIXTURES or
#       ./fixtures, written first by the installed package when missing (4.7 GB).
# Exit codes: 0 loaded and verified, 1 a step failed, 3 no GPU (the install and
# the build were still checked).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-}
dir=$(realpath -m "${2:-.gpu/package}")
fail() { echo "gpu package check: $*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds() { echo "$(($1 / 1000)).$(($1 % 1000 / 100)) s"; }

prepare() {
  rm -rf "$dir"
  mkdir -p "$dir"
  bun pm pack --destination "$dir" --quiet >/dev/null
  local tarball project
  tarball=$(ls "$dir"/gguf-vram-*.tgz)
  project=$(mktemp -d)
  echo '{ "name": "gguf-vram-cache-fill", "private": true }' >"$project/package.json"
  (cd "$project" && BUN_INSTALL_CACHE_DIR="$dir/bun-cache" bun add --silent "$tarball")
  rm -rf "$project"
  echo "prepared $dir: $(basename "$tarball") ($(($(stat -c %s "$tarball") / 1024)) KiB) and its dependencies ($(du -sh "$dir/bun-cache" | cut -f1))"
  echo "on the GPU machine: scripts/gpu-package-check.sh run ${2:-.gpu/package} [model.gguf]"
}

run() {
  local tarball work project package model before code first second
  tarball=$(ls "$dir"/gguf-vram-*.tgz 2>/dev/null) || fail "no tarball in $dir: run \`scripts/gpu-package-check.sh prepare\` where the registry is reachable, and carry $dir"
  work=$(mktemp -d "${TMPDIR:-/tmp}/gguf-vram-gpu-package-XXXXXX")
  trap "rm -rf '$work'" EXIT
  cp -r "$dir/bun-cache" "$work/bun-cache" # bun add writes to its cache
  project="$work/project"
  mkdir -p "$project"
  cd "$project"
  echo '{ "name": "gguf-vram-user", "private": true, "type": "module" }' >package.json
  local t0
  t0=$(now_ms)
  BUN_INSTALL_CACHE_DIR="$work/bun-cache" bun add --offline --silent "$tarball" || fail "the offline install failed"
  echo "installed $(basename "$tarball") offline in $(seconds $(($(now_ms) - t0)))"
  package="$project/node_modules/gguf-vram"
  before=$(cd "$package" && find . -printf '%p %s %T@\n' | sort)
  export XDG_CACHE_HOME="$work/cache" # the default place, empty: this is the first use
  unset GGUF_VRAM_CACHE_DIR

  model=${3:-}
  if [ -z "$model" ]; then
    local fixtures=${GGUF_VRAM_FIXTURES:-$root/fixtures}
    model="$fixtures/qwen2.5-7b-instruct-q4_k_m.gguf"
    [ -f "$model" ] || bunx gguf-vram fixtures qwen2.5-7b-instruct-q4_k_m --dir "$fixtures" || fail "writing the 7B fixture failed"
  fi
  model=$(realpath "$model")

  set +e
  t0=$(now_ms)
  bunx gguf-vram load "$model" --verify --json >"$work/first.json" 2>"$work/first.err"
  code=$?
  first=$(($(now_ms) - t0))
  set -e
  ls "$XDG_CACHE_HOME"/gguf-vram/libgguf_vram-*.so >/dev/null 2>&1 || fail "the first use built no library in $XDG_CACHE_HOME/gguf-vram: $(cat "$work/first.err")"
  echo "first use: built $(ls "$XDG_CACHE_HOME"/gguf-vram/libgguf_vram-*.so | xargs -n1 basename) into \$XDG_CACHE_HOME/gguf-vram and loaded: $(seconds "$first") (exit $code)"
  if [ "$code" = 3 ]; then
    echo "no GPU on this machine: $(head -1 "$work/first.err")"
    exit 3
  fi
  [ "$code" = 0 ] || fail "the first load exited $code: $(cat "$work/first.err")"

  t0=$(now_ms)
  bunx gguf-vram load "$model" --verify --json >"$work/second.json" 2>"$work/second.err" || fail "the second load failed: $(cat "$work/second.err")"
  second=$(($(now_ms) - t0))
  echo "next load (library cached): $(seconds "$second"); the first use's build cost about $(seconds $((first - second)))"

  for run in first second; do
    bun -e '
      const d = await Bun.file(process.argv[1]).json();
      if (d.verified !== true || d.error) { console.error(`not verified: ${JSON.stringify(d.error ?? null)}`); process.exit(1); }
      const t = d.timings;
      console.log(`${process.argv[2]}: ${d.model.tensors} tensors, ${d.ledger.totalBytes} bytes on ${d.device.name}, verified; parse ${t.parse.toFixed(0)} ms, upload ${t.upload.toFixed(0)} ms, verify ${t.verify.toFixed(0)} ms, total ${t.total.toFixed(0)} ms`);
    ' "$work/$run.json" "$run load" || fail "the $run load's JSON does not say verified"
  done
  [ "$before" = "$(cd "$package" && find . -printf '%p %s %T@\n' | sort)" ] || fail "something was written into the installed package's folder"
  echo "gpu package check: passed"
}

case $mode in
  prepare) prepare "$@" ;;
  run) run "$@" ;;
  *) echo "usage: scripts/gpu-package-check.sh prepare [DIR] | run [DIR] [MODEL]" >&2; exit 2 ;;
esac
