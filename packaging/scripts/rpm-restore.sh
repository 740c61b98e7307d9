#!/bin/sh
# Put back what rpm-set-aside.sh moved (after unlink-shims.sh took our links away).
for pair in $diversions; do
    if [ -f "${pair#*:}" ] && [ ! -e "${pair%%:*}" ] && [ ! -L "${pair%%:*}" ]; then
        mv -f "${pair#*:}" "${pair%%:*}"
    fi
done
