#!/usr/bin/env bash
# The one test command (make test, .ci/run): make sure the Debian packages
# the suite needs are installed, then gofmt, go vet and go test -race over
# the whole module.
#
# The tests start their own private dovecot and redis-server instances on
# free loopback ports; the system services are never started here, and
# installs run under a policy-rc.d that forbids starting them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Go lives in /usr/local/go on CI; dovecot lives in /usr/sbin.
export PATH="${PATH}:/usr/local/go/bin:/usr/sbin:/sbin"

packages=(dovecot-imapd redis-server libwbxml2-utils libxml2-utils)
missing=()
# go test -race needs cgo, and so a C compiler.
if ! command -v gcc >/dev/null; then
	packages+=(gcc)
	missing+=(gcc)
fi
command -v dovecot >/dev/null || missing+=(dovecot-imapd)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v wbxml2xml >/dev/null || missing+=(libwbxml2-utils)
command -v xmllint >/dev/null || missing+=(libxml2-utils)

if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "test.sh: installing ${packages[*]} (missing: ${missing[*]})"
		# Keep Debian's postinst from starting system dovecot or redis.
		own_policy=
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod 0755 /usr/sbin/policy-rc.d
			own_policy=1
		fi
		status=0
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}" || status=$?
		if [[ -n $own_policy ]]; then
			rm -f /usr/sbin/policy-rc.d
		fi
		if ((status != 0)); then
			echo "test.sh: apt-get failed ($status); tests needing ${missing[*]} will fail" >&2
		fi
	else
		echo "test.sh: missing Debian packages: ${missing[*]}" >&2
		echo "test.sh: install them with: sudo apt-get install -y ${packages[*]}" >&2
		echo "test.sh: continuing; tests that need them will fail and name the package" >&2
	fi
fi

go version
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	echo "test.sh: not gofmt'd:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 ./...
