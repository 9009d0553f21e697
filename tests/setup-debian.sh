#!/bin/sh
# tests/setup-debian.sh: install everything evcsd needs to build, test, fuzz and
# package on Debian 12 (run as root). Idempotent; quick when all is installed.
# Used by the README's two commands (tests/demo.sh and tests/run-all.sh).
set -eu
PKGS="build-essential autoconf automake libtool pkgconf ca-certificates curl openssl git
 libevent-dev liblua5.4-dev lua5.4 libmariadb-dev libcurl4-openssl-dev libxml2-dev
 libcunit1-dev libssl-dev libjansson-dev tzdata
 mariadb-server mariadb-client
 clang libclang-rt-14-dev valgrind
 dpkg-dev debhelper dh-autoreconf lintian fakeroot man-db groff-base socat systemd binutils adduser"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "setup-debian.sh: missing packages:$missing (run as root, or install them)" >&2
		exit 1
	fi
	echo "setup-debian.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# the server package must not start the host's MariaDB: tests run their own
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.evcs
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		cp /usr/sbin/policy-rc.d.evcs /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	rm -f /usr/sbin/policy-rc.d.evcs
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
