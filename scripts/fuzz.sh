#!/usr/bin/env bash
# Runs every Go fuzz target below the given package patterns (default: the
# whole module, which takes in the wbxml codec's targets) for FUZZTIME each
# (default 30s), one target at a time. New crashers are written to
# the package's testdata/fuzz/ by go test and fail this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${PATH}:/usr/local/go/bin"

fuzztime=${FUZZTIME:-30s}
patterns=("$@")
((${#patterns[@]} > 0)) || patterns=(./...)

found=0
for pkg in $(go list -f '{{.Dir}}' "${patterns[@]}"); do
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$pkg"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		found=1
		echo "fuzz: $pkg $target ($fuzztime)"
		(cd "$pkg" && go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" .)
	done
done
if ((found == 0)); then
	echo "fuzz: no fuzz targets under ${patterns[*]}" >&2
	exit 1
fi
