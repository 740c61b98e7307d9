#!/bin/sh
# EL has no dpkg-divert: the files of Puppet Server's package that ours replace
# (its cli/apps/dropsonde and the gem executable its analytics service runs) are
# moved aside here and back when dropsonde is erased (rpm-restore.sh, the same
# list). `rpm -V puppetserver` reports them as missing meanwhile; a puppetserver
# upgrade puts them back, and this trigger sets them aside again.
for pair in $diversions; do
    if [ -f "${pair%%:*}" ] && [ ! -L "${pair%%:*}" ]; then
        mv -f "${pair%%:*}" "${pair#*:}"
    fi
done
