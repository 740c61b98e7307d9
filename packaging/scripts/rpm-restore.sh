#!/bin/sh
# Put back what rpm-set-aside.sh moved (after unlink-shims.sh took our links away).
for pair in /opt/puppetlabs/server/apps/puppetserver/cli/apps/dropsonde:/opt/puppetlabs/server/apps/puppetserver/cli/dropsonde.puppetserver \
        /opt/puppetlabs/server/data/puppetserver/dropsonde/bin/dropsonde:/opt/puppetlabs/server/data/puppetserver/dropsonde/bin/dropsonde.puppetserver; do
    if [ -f "${pair#*:}" ] && [ ! -e "${pair%%:*}" ] && [ ! -L "${pair%%:*}" ]; then
        mv -f "${pair#*:}" "${pair%%:*}"
    fi
done
