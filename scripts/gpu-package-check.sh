#!/usr/bin/env bash
# The installed package on a GPU machine without network: installs the tarball
# into a new project (its dependencies from a Bun cache filled beforehand), lets
# the first load build the CUDA library into an empty per-user cache, and loads
# a model with --verify; times that first use against the next load.
#
#   scripts/gpu-package-check.sh prepare [DIR] [--with-bun]
#       here, with the registry: packs the package into DIR (default
#       .gpu/package) with a Bun cache of its dependencies (bun-cache.tgz), and
#       with --with-bun this bun too (bun.gz, about 50 MB) for a machine without one.
#   scripts/gpu-package-check.sh run [DIR] [MODEL]
#       on the GPU machine, offline (needs nvcc; bun from PATH or DIR/bun.gz):
#       MODEL is a .gguf; default: the synthetic Qwen2.5-7B Q4_K_M in
#       $GGUF_VRAM_FIXTURES or ./fixtures, written first by the installed
#       package when missing (4.7 GB).
# Exit codes: 0 loaded and verified, 1 a step failed, 3 no GPU (the install and
# the build were still checked).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-}
with_bun=false
args=()
for arg in "${@:2}"; do
  if [ "$arg" = --with-bun ]; then with_bun=true; else args+=("$arg"); fi
done
dir=$(realpath -m "${args[0]:-.gpu/package}")
model=${args[1]:-}
fail() { echo "gpu package check: $*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds() { echo "$(($1 / 1000)).$(($1 % 1000 / 100)) s"; }
# What a load printed: its stderr, and the error its --json document names.
said() {
  tail -n 3 "$1.err"
  bun -e 'const e = (await Bun.file(process.argv[1]).json().catch(() => ({}))).error; if (e) console.log(`${e.code}: ${e.message} — ${e.hint}`)' "$1.json"
}

prepare() {
  rm -rf "$dir"
  mkdir -p "$dir"
  bun pm pack --destination "$dir" --quiet >/dev/null
  local tarball project
  tarball=$(ls "$dir"/gguf-vram-*.tgz)
  project=$(mktemp -d)
  echo '{ "name": "gguf-vram-cache-fill", "private": true }' >"$project/package.json"
  (cd "$project" && BUN_INSTALL_CACHE_DIR="$project/bun-cache" bun add --silent "$tarball")
  tar czf "$dir/bun-cache.tgz" -C "$project" bun-cache
  rm -rf "$project"
  if $with_bun; then gzip -c "$(readlink -f "$(command -v bun)")" >"$dir/bun.gz"; fi
  echo "prepared $dir ($(du -sh "$dir" | cut -f1)): $(cd "$dir" && ls | tr '\n' ' ')"
}

run() {
  local tarball work project package before code first second
  tarball=$(ls "$dir"/gguf-vram-*.tgz 2>/dev/null) || fail "no tarball in $dir: run \`scripts/gpu-package-check.sh prepare\` where the registry is reachable, and carry $dir"
  work=$(mktemp -d "${TMPDIR:-/tmp}/gguf-vram-gpu-package-XXXXXX")
  trap "rm -rf '$work'" EXIT
  tar xzf "$dir/bun-cache.tgz" -C "$work"
  if ! command -v bun >/dev/null; then
    [ -f "$dir/bun.gz" ] || fail "no bun on PATH and no $dir/bun.gz: prepare with --with-bun"
    mkdir -p "$work/bin"
    gunzip -c "$dir/bun.gz" >"$work/bin/bun"
    chmod +x "$work/bin/bun"
    export PATH="$work/bin:$PATH"
  fi
  local nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  echo "bun $(bun --version), nvcc $("$nvcc" --version 2>/dev/null | grep -o 'release [0-9.]*' || echo "not found at $nvcc")"
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

  if [ -z "$model" ]; then
    local fixtures=${GGUF_VRAM_FIXTURES:-$root/fixtures}
    model="$fixtures/qwen2.5-7b-instruct-q4_k_m.gguf"
    [ -f "$model" ] || bun x gguf-vram fixtures qwen2.5-7b-instruct-q4_k_m --dir "$fixtures" || fail "writing the 7B fixture failed"
  fi
  model=$(realpath "$model")

  set +e
  t0=$(now_ms)
  bun x gguf-vram load "$model" --verify --json >"$work/first.json" 2>"$work/first.err"
  code=$?
  first=$(($(now_ms) - t0))
  set -e
  ls "$XDG_CACHE_HOME"/gguf-vram/libgguf_vram-*.so >/dev/null 2>&1 || fail "the first use built no library in $XDG_CACHE_HOME/gguf-vram: $(said "$work/first")"
  echo "first use: built $(ls "$XDG_CACHE_HOME"/gguf-vram/libgguf_vram-*.so | xargs -n1 basename) into \$XDG_CACHE_HOME/gguf-vram and loaded: $(seconds "$first") (exit $code)"
  if [ "$code" = 3 ]; then
    echo "no GPU on this machine: $(said "$work/first")"
    exit 3
  fi
  [ "$code" = 0 ] || fail "the first load exited $code: $(said "$work/first")"

  t0=$(now_ms)
  bun x gguf-vram load "$model" --verify --json >"$work/second.json" 2>"$work/second.err" || fail "the second load failed: $(said "$work/second")"
  second=$(($(now_ms) - t0))
  echo "next load (library cached): $(seconds "$second"); the first use's build cost about $(seconds $((first - second)))"

  for run in first second; do
    bun -e '
      const d = await Bun.file(process.argv[1]).json();
      if (d.verified !== true || d.error) { console.error(`not verified: ${JSON.stringify(d.error ?? null)}`); process.exit(1); }
      const t = d.timings ?? {};
      const ms = (name) => `${name} ${typeof t[name] === "number" ? t[name].toFixed(1) : "—"} ms`;
      console.log(`${process.argv[2]}: ${d.model.tensors} tensors, ${d.ledger?.totalBytes} bytes on ${d.device?.name}, verified; ${["parse", "upload", "verify", "total"].map(ms).join(", ")}`);
    ' "$work/$run.json" "$run load" || fail "the $run load's JSON does not say verified"
  done
  [ "$before" = "$(cd "$package" && find . -printf '%p %s %T@\n' | sort)" ] || fail "something was written into the installed package's folder"
  echo "gpu package check: passed"
}

case $mode in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: scripts/gpu-package-check.sh prepare [DIR] | run [DIR] [MODEL]" >&2; exit 2 ;;
esac
