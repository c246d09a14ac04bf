#!/bin/sh
# Installs Berth: the binary (berth, and berthd beside it), a systemd unit and a default config.
#
#   install.sh --url URL --sha256 HEX       download a release binary and verify it
#   install.sh --file PATH [--sha256 HEX]   install a local binary
#   install.sh --from-source [--checkout DIR]
#                                           build with `deno task compile`, or else install a wrapper
#                                           that runs the checkout with deno
#   install.sh --uninstall [--purge]        remove what install.sh installed (--purge: also
#                                           /etc/berth and /var/lib/berth)
# Common options:
#   --prefix DIR      install under DIR/bin (default /usr/local)
#   --root-dir DIR    write everything below DIR, as if it were / (also taken from $DESTDIR);
#                     systemctl is left alone then
#   --enable          systemctl enable --now berth after installing
#
# Running it again is safe: the binary and unit are replaced, an existing config is kept.

set -eu

PROG=install.sh
MODE=""
URL=""
FILE=""
SHA256=""
CHECKOUT=""
PREFIX=/usr/local
ROOT_DIR=${DESTDIR:-}
PURGE=0
ENABLE=0
TMPDIR_INSTALL=""

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	# The header comment above is the help text.
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

set_mode() {
	if [ -n "$MODE" ] && [ "$MODE" != "$1" ]; then
		die "Cannot combine --$MODE with --$1: choose one install source"
	fi
	MODE=$1
}

need_arg() {
	[ "$#" -ge 2 ] || die "Option $1 needs a value"
}

while [ "$#" -gt 0 ]; do
	case "$1" in
	--url)
		need_arg "$@"
		set_mode url
		URL=$2
		shift 2
		;;
	--file)
		need_arg "$@"
		set_mode file
		FILE=$2
		shift 2
		;;
	--from-source)
		set_mode from-source
		shift
		;;
	--checkout)
		need_arg "$@"
		CHECKOUT=$2
		shift 2
		;;
	--sha256)
		need_arg "$@"
		SHA256=$2
		shift 2
		;;
	--prefix)
		need_arg "$@"
		PREFIX=$2
		shift 2
		;;
	--root-dir)
		need_arg "$@"
		ROOT_DIR=$2
		shift 2
		;;
	--uninstall)
		set_mode uninstall
		shift
		;;
	--purge)
		PURGE=1
		shift
		;;
	--enable)
		ENABLE=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "Unknown option $1 (see --help)" ;;
	esac
done

[ -n "$MODE" ] || die "Nothing to do: give --url, --file, --from-source or --uninstall (see --help)"
case "$PREFIX" in
/*) ;;
*) die "Cannot use --prefix $PREFIX: it must be an absolute path" ;;
esac
if [ -n "$ROOT_DIR" ]; then
	mkdir -p "$ROOT_DIR" || die "Cannot create root dir $ROOT_DIR"
	ROOT_DIR=$(cd "$ROOT_DIR" && pwd)
fi
if [ "$PURGE" = 1 ] && [ "$MODE" != uninstall ]; then
	die "--purge only goes with --uninstall"
fi

BIN_DIR=$ROOT_DIR$PREFIX/bin
BIN=$BIN_DIR/berth
UNIT=$ROOT_DIR/etc/systemd/system/berth.service
CONF_DIR=$ROOT_DIR/etc/berth
CONF=$CONF_DIR/config.toml
STATE_DIR=$ROOT_DIR/var/lib/berth
# Written into the unit and messages: the paths as the installed system will see them.
LIVE_BIN=$PREFIX/bin/berth

cleanup() {
	if [ -n "$TMPDIR_INSTALL" ]; then rm -rf "$TMPDIR_INSTALL"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# systemctl only when installing into the running system and systemd runs it.
use_systemctl() {
	[ -z "$ROOT_DIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d' ' -f1
	elif command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 -r "$1" | cut -d' ' -f1
	else
		die "Cannot verify $1: no sha256sum, shasum or openssl found"
	fi
}

check_sha256_format() {
	case "$1" in
	*[!0-9a-fA-F]*) die "Cannot use --sha256 $1: not a hex digest" ;;
	esac
	[ "${#1}" -eq 64 ] || die "Cannot use --sha256 $1: a sha256 digest has 64 hex digits, this has ${#1}"
}

# verify FILE EXPECTED: exits naming both digests when they differ.
verify() {
	got=$(sha256_of "$1")
	want=$(printf '%s' "$2" | tr 'A-F' 'a-f')
	if [ "$got" != "$want" ]; then
		die "sha256 mismatch for $3: expected $want, got $got"
	fi
	say "sha256 of $3 is $got (verified)"
}

make_tmp() {
	TMPDIR_INSTALL=$(mktemp -d "${TMPDIR:-/tmp}/berth-install.XXXXXX") || die "Cannot create a temp dir"
}

# install_binary SRC: atomic replace, so a running berth keeps its old inode.
install_binary() {
	mkdir -p "$BIN_DIR" || die "Cannot create $BIN_DIR"
	cp "$1" "$BIN_DIR/.berth.new.$$" || die "Cannot write $BIN_DIR/.berth.new.$$"
	chmod 0755 "$BIN_DIR/.berth.new.$$"
	mv -f "$BIN_DIR/.berth.new.$$" "$BIN" || die "Cannot install $BIN"
	ln -sfn berth "$BIN_DIR/berthd" || die "Cannot link $BIN_DIR/berthd"
	say "installed $LIVE_BIN (and berthd -> berth)"
}

write_unit() {
	mkdir -p "$(dirname "$UNIT")" || die "Cannot create $(dirname "$UNIT")"
	cat >"$UNIT.new.$$" <<EOF
# Installed by Berth's install.sh; --uninstall removes it.
[Unit]
Description=Berth container runtime (containerd-compatible)
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=$LIVE_BIN daemon
# The daemon tells systemd (sd_notify READY=1) once its API socket serves.
Type=notify
# Containers live in cgroups the daemon creates below its own.
Delegate=yes
# Stop only the daemon: shims and containers keep running across restarts and upgrades.
KillMode=process
Restart=always
RestartSec=5
# Non-zero Limit*s cost kernel accounting overhead; containers are accounted in their cgroups.
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
EOF
	mv -f "$UNIT.new.$$" "$UNIT" || die "Cannot install $UNIT"
	say "wrote ${UNIT#"$ROOT_DIR"}"
}

default_config() {
	cat <<'EOF'
# Berth daemon configuration: containerd's config.toml format (version 2).
version = 2
root = "/var/lib/berth"
state = "/run/berth"

[grpc]
  address = "/run/berth/berth.sock"

[debug]
  level = "info"
EOF
}

write_config() {
	if [ -e "$CONF" ]; then
		say "kept existing ${CONF#"$ROOT_DIR"}"
		return
	fi
	mkdir -p "$CONF_DIR" || die "Cannot create $CONF_DIR"
	default_config >"$CONF.new.$$"
	mv -f "$CONF.new.$$" "$CONF"
	say "wrote default ${CONF#"$ROOT_DIR"}"
}

fetch_url() {
	command -v curl >/dev/null 2>&1 || die "Cannot download $URL: curl is not installed"
	make_tmp
	say "downloading $URL"
	curl -fsSL --retry 2 -o "$TMPDIR_INSTALL/berth" "$URL" || die "Cannot download $URL"
	FILE=$TMPDIR_INSTALL/berth
}

# Sets FILE to a built binary, or WRAPPER_FOR to the checkout when no binary could be built.
build_from_source() {
	if [ -z "$CHECKOUT" ]; then
		CHECKOUT=$(cd "$(dirname "$0")" && pwd)
	fi
	CHECKOUT=$(cd "$CHECKOUT" && pwd) || die "Cannot use checkout $CHECKOUT: not a directory"
	[ -f "$CHECKOUT/main.ts" ] || die "Cannot build from $CHECKOUT: it has no main.ts"
	DENO=$(command -v deno 2>/dev/null || true)
	if [ -z "$DENO" ] && [ -x "$CHECKOUT/node_modules/.bin/deno" ]; then
		DENO=$CHECKOUT/node_modules/.bin/deno
	fi
	[ -n "$DENO" ] || die "Cannot build from $CHECKOUT: deno is not on PATH (npm install in the checkout brings it)"
	# The npm package's deno is a node launcher; the wrapper should exec the real binary.
	REAL_DENO=$("$DENO" eval 'console.log(Deno.execPath())' 2>/dev/null) || REAL_DENO=$DENO
	say "building with deno task compile in $CHECKOUT"
	if (cd "$CHECKOUT" && "$DENO" task compile) && [ -x "$CHECKOUT/dist/berth" ]; then
		FILE=$CHECKOUT/dist/berth
	else
		say "could not compile a binary; installing a wrapper that runs $CHECKOUT/main.ts with deno instead"
		WRAPPER_FOR=$CHECKOUT
	fi
}

install_wrapper() {
	make_tmp
	cat >"$TMPDIR_INSTALL/berth" <<EOF
#!/bin/sh
# Installed by Berth's install.sh --from-source: no compiled binary, so run the checkout with deno.
case "\${0##*/}" in
berthd) set -- daemon "\$@" ;;
esac
exec "$REAL_DENO" run -A "$WRAPPER_FOR/main.ts" "\$@"
EOF
	install_binary "$TMPDIR_INSTALL/berth"
	say "$LIVE_BIN is a wrapper around $WRAPPER_FOR/main.ts (the checkout must stay in place)"
}

uninstall() {
	if use_systemctl; then
		systemctl disable --now berth.service >/dev/null 2>&1 || true
	fi
	for f in "$BIN" "$BIN_DIR/berthd" "$UNIT"; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			rm -f "$f" || die "Cannot remove $f"
			say "removed ${f#"$ROOT_DIR"}"
		fi
	done
	if [ "$PURGE" = 1 ]; then
		for d in "$CONF_DIR" "$STATE_DIR"; do
			if [ -e "$d" ]; then
				rm -rf "$d" || die "Cannot remove $d"
				say "removed ${d#"$ROOT_DIR"}"
			fi
		done
	else
		# The default config is ours; an edited one is the operator's.
		if [ -f "$CONF" ]; then
			if default_config | cmp -s - "$CONF"; then
				rm -f "$CONF"
				say "removed ${CONF#"$ROOT_DIR"}"
			else
				say "kept ${CONF#"$ROOT_DIR"}: it was edited (--purge removes it)"
			fi
		fi
		rmdir "$CONF_DIR" 2>/dev/null || true
		if [ -e "$STATE_DIR" ]; then say "kept ${STATE_DIR#"$ROOT_DIR"} (--purge removes it)"; fi
	fi
	if use_systemctl; then systemctl daemon-reload || true; fi
}

case "$MODE" in
uninstall)
	uninstall
	exit 0
	;;
url)
	[ -n "$SHA256" ] || die "Cannot install from --url without --sha256: a download must be verified"
	check_sha256_format "$SHA256"
	fetch_url
	verify "$FILE" "$SHA256" "$URL"
	install_binary "$FILE"
	;;
file)
	[ -f "$FILE" ] || die "Cannot install $FILE: no such file"
	if [ -n "$SHA256" ]; then
		check_sha256_format "$SHA256"
		verify "$FILE" "$SHA256" "$FILE"
	else
		say "sha256 of $FILE is $(sha256_of "$FILE") (not verified: no --sha256 given)"
	fi
	install_binary "$FILE"
	;;
from-source)
	WRAPPER_FOR=""
	build_from_source
	if [ -n "$WRAPPER_FOR" ]; then install_wrapper; else install_binary "$FILE"; fi
	;;
esac

write_unit
write_config

if use_systemctl; then
	systemctl daemon-reload || die "systemctl daemon-reload failed"
	if [ "$ENABLE" = 1 ]; then
		systemctl enable --now berth.service || die "Cannot start berth.service"
		say "berth.service enabled and started"
	else
		say "start it with: systemctl enable --now berth"
	fi
elif [ "$ENABLE" = 1 ]; then
	say "not enabling berth.service: systemd is not managing this root"
fi
