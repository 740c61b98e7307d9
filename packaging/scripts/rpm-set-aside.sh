#!/bin/sh
# EL has no dpkg-divert: the files of Puppet Server's package that ours replace
# (its cli/apps/dropsonde and the gem executable its analytics service runs) are
# moved aside here and back when dropsonde is erased. `rpm -V puppetserver`
# reports them as missing meanwhile; a puppetserver upgrade puts them back, and
# this trigger sets them aside again.
for pair in /opt/puppetlabs/server/apps/puppetserver/cli/apps/dropsonde:/opt/puppetlabs/server/apps/puppetserver/cli/dropsonde.puppetserver \
        /opt/puppetlabs/server/data/puppetserver/dropsonde/bin/dropsonde:/opt/puppetlabs/server/data/puppetserver/dropsonde/bin/dropsonde.puppetserver; do
    if [ -f "${pair%%:*}" ] && [ ! -L "${pair%%:*}" ]; then
        mv -f "${pair%%:*}" "${pair#*:}"
    fi
done
