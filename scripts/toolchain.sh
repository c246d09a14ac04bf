#!/usr/bin/env bash
# Installs the Deno version pinned in package.json into .tools/ (from the npm registry) and prints the
# folder to put on PATH. Deno manages ./node_modules itself ("nodeModulesDir": "auto"), so npm keeps
# out of it: the toolchain lives in .tools/node_modules and runs from a copy in .tools/bin.
#
#   export PATH="$(scripts/toolchain.sh):$PATH"
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(node -p "require('./package.json').devDependencies.deno")
have=$(.tools/bin/deno --version 2>/dev/null | head -1 | cut -d' ' -f2 || true)
if [ "$have" != "$want" ]; then
  npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error "deno@$want" >&2
  mkdir -p .tools/bin
  cp -f .tools/node_modules/deno/deno .tools/bin/deno
fi
echo "$PWD/.tools/bin"
