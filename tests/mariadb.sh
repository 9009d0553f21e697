#!/bin/sh
# tests/mariadb.sh: a private, throw-away MariaDB server for the test suite.
#
#   tests/mariadb.sh start DIR     initialise DIR/data on first use, start the server, wait until it
#                                  answers, print `export` lines for the client environment
#   tests/mariadb.sh stop DIR      shut it down (clean shutdown, then TERM, then KILL)
#   tests/mariadb.sh restart DIR   stop + start on the same socket and port (clients reconnect)
#   tests/mariadb.sh env DIR       print the `export` lines again
#
# Usage from a shell:  eval "$(tests/mariadb.sh start /tmp/mdb)"
#
# Everything lives under DIR: data, socket, pid, error log. The host's own MariaDB (service,
# /etc/mysql, /var/lib/mysql) is never read or touched: every program runs with --no-defaults.
# The server listens on DIR/mysqld.sock and on 127.0.0.1:PORT, PORT picked free on first start
# and kept in DIR/port so a restart comes back at the same address. Authentication stays on
# (no --skip-grant-tables): the tests connect as evcs/evcs to database evcs_test.
# Works as root (runs mariadbd --user=root) and as an ordinary user.
set -eu

die() { echo "mariadb.sh: $*" >&2; exit 1; }

find_prog() {
	for p in "$@"; do
		if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return 0; fi
		for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
			if [ -x "$d/$p" ]; then echo "$d/$p"; return 0; fi
		done
	done
	return 1
}

MARIADBD=$(find_prog mariadbd mysqld) || die "mariadbd not found (apt-get install mariadb-server)"
INSTALL_DB=$(find_prog mariadb-install-db mysql_install_db) || die "mariadb-install-db not found"
ADMIN=$(find_prog mariadb-admin mysqladmin) || die "mariadb-admin not found (apt-get install mariadb-client)"
CLIENT=$(find_prog mariadb mysql) || die "mariadb client not found (apt-get install mariadb-client)"

DB_USER=evcs
DB_PASSWORD=evcs
DB_NAME=evcs_test

[ $# -eq 2 ] || die "usage: $0 start|stop|restart|env DIR"
cmd=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
SOCK="$DIR/mysqld.sock"
PIDFILE="$DIR/mysqld.pid"
# sun_path holds 108 bytes; a longer socket path fails late and obscurely, so fail early.
[ ${#SOCK} -lt 100 ] || die "socket path too long (${#SOCK} bytes): $SOCK; use a shorter DIR"

userarg=
[ "$(id -u)" -eq 0 ] && userarg=--user=root

root_sql() { "$CLIENT" --no-defaults --protocol=socket --socket="$SOCK" -uroot -e "$1"; }

alive() {
	[ -S "$SOCK" ] && "$ADMIN" --no-defaults --protocol=socket --socket="$SOCK" -uroot \
		--connect-timeout=2 ping >/dev/null 2>&1
}

port_free() {
	if command -v ss >/dev/null 2>&1; then
		! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
	else
		# bash-less fallback: nothing listening means connect fails
		! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

pick_port() {
	# Below Linux's ephemeral range (32768+), so no client socket of the tests can
	# hold the port by chance; spread by pid and time so parallel runs rarely
	# collide; verified free below, and do_start retries on a bind failure anyway.
	p=$(( 12000 + ($$ * 7 + $(date +%s)) % 20000 ))
	n=0
	while [ $n -lt 200 ]; do
		if port_free "$p"; then echo "$p"; return 0; fi
		p=$(( p + 1 )); [ $p -lt 32000 ] || p=12000
		n=$((n + 1))
	done
	die "no free TCP port found"
}

print_env() {
	port=$(cat "$DIR/port")
	echo "export EVCS_DB_SOCKET='$SOCK'"
	echo "export EVCS_DB_HOST='127.0.0.1'"
	echo "export EVCS_DB_PORT='$port'"
	echo "export EVCS_DB_USER='$DB_USER'"
	echo "export EVCS_DB_PASSWORD='$DB_PASSWORD'"
	echo "export EVCS_DB_NAME='$DB_NAME'"
	echo "export EVCS_DB_DIR='$DIR'"
}

do_start() {
	if alive; then print_env; return 0; fi
	fresh=0
	if [ ! -d "$DIR/data/mysql" ]; then
		rm -rf "$DIR/data"
		"$INSTALL_DB" --no-defaults --datadir="$DIR/data" $userarg \
			--auth-root-authentication-method=normal --skip-test-db \
			>"$DIR/install.log" 2>&1 || { cat "$DIR/install.log" >&2; die "mariadb-install-db failed"; }
		fresh=1
	fi
	keep_port=0
	[ -s "$DIR/port" ] && keep_port=1 # a restart comes back at the same address
	[ -s "$DIR/port" ] || pick_port >"$DIR/port"
	attempt=0
	while :; do
		attempt=$((attempt + 1))
		port=$(cat "$DIR/port")
		rm -f "$SOCK" "$PIDFILE"
		: >"$DIR/error.log"
		# setsid: the server must outlive the shell (and process group) that started it,
		# e.g. a restart issued by a test through system().
		setsid "$MARIADBD" --no-defaults $userarg --datadir="$DIR/data" --socket="$SOCK" \
			--port="$port" --bind-address=127.0.0.1 --pid-file="$PIDFILE" \
			--log-error="$DIR/error.log" --innodb-buffer-pool-size=64M \
			--innodb-log-file-size=32M --max-connections=200 --skip-name-resolve \
			--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
			</dev/null >>"$DIR/stdout.log" 2>&1 &
		i=0
		while ! alive; do
			i=$((i + 1))
			# the port was taken between the check and the bind: try again
			if grep -q "Address already in use" "$DIR/error.log" 2>/dev/null; then
				break
			fi
			if [ $i -gt 300 ]; then
				tail -n 30 "$DIR/error.log" >&2 || true
				die "server did not answer within 30 s (log: $DIR/error.log)"
			fi
			sleep 0.1
		done
		alive && break
		[ $attempt -lt 10 ] || { tail -n 30 "$DIR/error.log" >&2; die "no port to bind after $attempt attempts"; }
		echo "mariadb.sh: port $port busy, retrying" >&2
		sleep 0.5
		[ $keep_port -eq 1 ] || pick_port >"$DIR/port"
	done
	if [ $fresh -eq 1 ]; then
		root_sql "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
			CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
			CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
			GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
			GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'127.0.0.1';" \
			|| die "creating user/database failed"
	fi
	print_env
}

do_stop() {
	pid=
	[ -s "$PIDFILE" ] && pid=$(cat "$PIDFILE")
	if alive; then
		"$ADMIN" --no-defaults --protocol=socket --socket="$SOCK" -uroot shutdown >/dev/null 2>&1 || true
	fi
	[ -n "$pid" ] || return 0
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -eq 300 ] && kill -TERM "$pid" 2>/dev/null
		[ $i -eq 600 ] && kill -KILL "$pid" 2>/dev/null
		[ $i -gt 650 ] && die "server pid $pid does not exit"
		sleep 0.1
	done
	rm -f "$PIDFILE"
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
restart) do_stop; do_start >/dev/null; print_env ;;
env) print_env ;;
*) die "unknown command $cmd (start|stop|restart|env)" ;;
esac
