#!/usr/bin/env bash
# Sets Berth up on a fresh Debian machine and runs its main job: start the daemon, then run a
# container from an image. Needs root (containers need namespaces, mounts and cgroups).
#
#   sudo ./scripts/quickstart.sh            # daemon on /run/berth/berth.sock, logs in /tmp/berth-quickstart
#
# The image is built locally from Debian's busybox-static (no registry is contacted); the daemon is
# left running so you can go on with `berth` commands (see the README). Stop it with
# `kill $(cat /tmp/berth-quickstart/daemon.pid)`.
set -euo pipefail
cd "$(dirname "$0")/.."
work=/tmp/berth-quickstart
mkdir -p "$work"

if [ "$(id -u)" -ne 0 ]; then
  echo "quickstart: run as root (containers need namespaces, mounts and cgroups)" >&2
  exit 1
fi

missing=()
# runc runs containers; Debian's CNI plugins and iptables give them the default bridge network.
for p in runc busybox-static containernetworking-plugins iptables; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quickstart: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Deno toolchain comes from the npm registry, pinned in package.json.
PATH="$(scripts/toolchain.sh):$PATH"
export PATH
berth() { deno run -A --quiet main.ts "$@"; }

if ! berth version >/dev/null 2>&1; then
  echo "quickstart: starting berth daemon (log: $work/daemon.log)"
  nohup deno run -A --quiet main.ts daemon >"$work/daemon.log" 2>&1 &
  echo $! >"$work/daemon.pid"
  for _ in $(seq 100); do berth version >/dev/null 2>&1 && break; sleep 0.1; done
fi
berth version

deno run -A --quiet scripts/busybox_image.ts "$work/busybox.tar" docker.io/library/busybox:latest
berth images import "$work/busybox.tar"
berth run --rm --hostname demo docker.io/library/busybox:latest sh -c 'echo "hello from $(hostname) at $(hostname -i), a Berth container"'
