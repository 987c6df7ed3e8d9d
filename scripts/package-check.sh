#!/usr/bin/env bash
# The package as a user meets it: packs it, installs the tarball into a new
# project outside the repository (its dependencies from the registry), and there
#   (a) `bunx gguf-vram --help`, `fixtures` and `inspect` work;
#   (b) the README's TypeScript example, importing load and readGguf from
#       "gguf-vram", type-checks (bun check) and runs: the first load builds the
#       CUDA library into the user's cache, then exits 3 without a GPU (0 with one);
#   (c) `bunx gguf-vram load --dry-run --json` and a project script running
#       `gguf-vram load`, typed in a subfolder, read a path relative to it, and
#       a failure through bunx is one line, the command's own.
# The installed package's folder is made read-only first and must stay as it was.
# Prints the tarball's files and sizes; the project is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

work=$(mktemp -d "${TMPDIR:-/tmp}/gguf-vram-package-XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "package check: $*" >&2; exit 1; }

# ─── the tarball ──────────────────────────────────────────────────────────────
bun pm pack --destination "$work" --quiet >/dev/null
tarball=$(ls "$work"/gguf-vram-*.tgz)
files=$(tar tzf "$tarball" | wc -l)
packed=$(stat -c %s "$tarball")
unpacked=$(tar xzf "$tarball" -O | wc -c)
echo "package: $(basename "$tarball"): $files files, $((packed / 1024)) KiB packed, $((unpacked / 1024)) KiB unpacked"

# ─── a project of its own ─────────────────────────────────────────────────────
project="$work/project"
mkdir -p "$project/sub"
cd "$project"
cat >package.json <<'EOF'
{ "name": "gguf-vram-user", "private": true, "type": "module", "scripts": { "load": "gguf-vram load" } }
EOF
cat >tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "lib": ["ESNext"], "target": "ESNext", "module": "Preserve", "moduleDetection": "force", "types": ["bun"],
    "moduleResolution": "bundler", "allowImportingTsExtensions": true, "verbatimModuleSyntax": true, "noEmit": true,
    "strict": true, "skipLibCheck": true, "noFallthroughCasesInSwitch": true, "noUncheckedIndexedAccess": true, "noImplicitOverride": true
  }
}
EOF
version() { bun -p "require('$root/node_modules/$1/package.json').version"; }
bun add --silent "$tarball"
bun add --silent --dev "typescript@$(version typescript)" "@types/bun@$(version @types/bun)"
package="$project/node_modules/gguf-vram"
chmod -R a-w "$package"
before=$(cd "$package" && find . -printf '%p %s %T@\n' | sort)

# (a) the command
bunx gguf-vram --help | grep -q '^  load ' || fail "gguf-vram --help does not list load"
bunx gguf-vram fixtures tiny-qwen2-q4_k_m >/dev/null # into ./fixtures here, not into the package
bunx gguf-vram inspect fixtures/tiny-qwen2-q4_k_m.gguf | grep -q 'every expected tensor is present' || fail "gguf-vram inspect did not check the model"

# (b) the library, as the README shows it
awk '/^### Use it from your own project/ { on = 1 } on && /^```ts$/ { code = 1; next } code && /^```$/ { exit } code' "$root/README.md" >app.ts
grep -q 'from "gguf-vram"' app.ts || fail "no TypeScript example in the README's \"Use it from your own project\""
bun check app.ts >/dev/null 2>&1 || { bun check app.ts; fail "the README's example does not type-check against the package"; }
cache=$(bun -e 'import { nativeCacheDir } from "gguf-vram"; console.log(nativeCacheDir())')
libraries() { { ls "$cache"/libgguf_vram-*.so 2>/dev/null || true; } | wc -l; }
cached=$(libraries)
started=$(date +%s%N)
set +e
bun app.ts fixtures/tiny-qwen2-q4_k_m.gguf >app.out 2>app.err
code=$?
set -e
ms=$((($(date +%s%N) - started) / 1000000))
grep -q 'tiny-qwen2-q4_k_m.gguf: GGUF v3, 27 tensors' app.out || fail "the example did not read the header: $(cat app.out app.err)"
case $code in
  0) grep -q 'bytes in VRAM, verified' app.out || fail "the example loaded nothing: $(cat app.out)" ;;
  3) grep -q '^NO_CUDA_DEVICE: no CUDA device' app.err || fail "exit 3 without the no-device line: $(cat app.err)" ;;
  *) fail "the example exited $code: $(cat app.out app.err)" ;;
esac
took="$((ms / 1000)).$((ms % 1000 / 100)) s, exit $code"
if [ "$(libraries)" -gt "$cached" ]; then echo "first use: built the CUDA library into $cache, then loaded: $took"
else echo "first use: the CUDA library was in $cache already; the load: $took"; fi

# (c) paths typed in a subfolder
cp fixtures/tiny-qwen2-q4_k_m.gguf sub/here.gguf
cd sub
for run in "bunx gguf-vram load" "bun run load"; do
  $run --dry-run --json --model here.gguf >plan.json 2>run.err || fail "$run --dry-run in a subfolder failed: $(cat run.err)"
  bun -e 'const d = await Bun.file("plan.json").json(); if (d.model.path !== "here.gguf" || d.model.fileSize !== 912000) process.exit(1)' ||
    fail "$run in a subfolder did not read sub/here.gguf"
done
# a failure through bunx is the command's one line, with none of bun's own
set +e
bunx gguf-vram load --model missing.gguf >/dev/null 2>run.err
code=$?
set -e
[ "$code" = 1 ] && [ "$(wc -l <run.err)" = 1 ] && grep -q '^error: missing.gguf: no such file' run.err ||
  fail "bunx gguf-vram load of a missing file: exit $code, $(cat run.err)"
cd ..

after=$(cd "$package" && find . -printf '%p %s %T@\n' | sort)
[ "$before" = "$after" ] || fail "something was written into the installed package's folder"
echo "package check: passed (--help, fixtures, inspect; the README's example type-checks and runs; paths from a subfolder; a failure is one line; nothing written into the package)"
