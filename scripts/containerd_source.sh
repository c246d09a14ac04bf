#!/usr/bin/env bash
# Brings Debian's containerd source package (the version installed) into the test cache and prints
# the folder of its source tree. Its vendor/ folder holds k8s.io/cri-api and client-go's
# tools/remotecommand, which the real CRI clients in tests/go/cri build against offline (GOPATH mode,
# with Debian's golang-*-dev packages for the rest). Needs a deb-src entry: one for Debian's own
# mirrors is added when none is configured. Idempotent; run as root (CI does, from .ci/run).
set -euo pipefail
cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/berth-tests/containerd-src"
version=$(dpkg-query -W -f='${Version}' containerd 2>/dev/null || true)
if [ -z "$version" ]; then
  echo "containerd_source: the containerd package is not installed" >&2
  exit 1
fi
upstream=${version%%-*}          # 1.6.20~ds1
tree="$cache/containerd-${upstream%%~*}"
if [ -f "$tree/.berth-version" ] && [ "$(cat "$tree/.berth-version")" = "$version" ]; then
  echo "$tree"
  exit 0
fi
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # shellcheck source=/dev/null
  . /etc/os-release
  cat >/etc/apt/sources.list.d/berth-deb-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME} ${VERSION_CODENAME}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: ${VERSION_CODENAME}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq >/dev/null
fi
mkdir -p "$cache"
cd "$cache"
if ! ls containerd_"${upstream}".orig.tar.* >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get source -qq --download-only "containerd=$version" >&2
fi
rm -rf "$tree.tmp" && mkdir -p "$tree.tmp"
tar -xf containerd_"${upstream}".orig.tar.* -C "$tree.tmp" --strip-components=1
echo "$version" >"$tree.tmp/.berth-version"
rm -rf "$tree" && mv "$tree.tmp" "$tree"
echo "$tree"
