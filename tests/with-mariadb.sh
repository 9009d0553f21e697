#!/bin/sh
# tests/with-mariadb.sh CMD [ARGS...]: run CMD with a private MariaDB.
#
# Starts tests/mariadb.sh in a fresh temporary directory, exports EVCS_DB_* (see mariadb.sh) plus
# EVCS_MARIADB_SH (absolute path of mariadb.sh, used by tests that restart the server), runs CMD,
# stops the server, removes the directory, and exits with CMD's status.
# Example: tests/with-mariadb.sh make check
set -u
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
EVCS_MARIADB_SH="$here/mariadb.sh"
export EVCS_MARIADB_SH

dir=$(mktemp -d "${TMPDIR:-/tmp}/evcs-mdb.XXXXXX") || exit 2
cleanup() {
	"$EVCS_MARIADB_SH" stop "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

envs=$("$EVCS_MARIADB_SH" start "$dir") || { echo "with-mariadb.sh: could not start MariaDB" >&2; exit 2; }
eval "$envs"

"$@"
rc=$?
exit $rc
