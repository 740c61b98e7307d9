#!/bin/sh
# Take away the links link-shims.sh made (only ours).
for link in /usr/share/puppetserver/cli/apps/dropsonde /opt/puppetlabs/server/apps/puppetserver/cli/apps/dropsonde \
        /opt/puppetlabs/server/data/puppetserver/dropsonde/bin/dropsonde; do
    case "$(readlink "$link" 2>/dev/null)" in
        /usr/lib/dropsonde/*|/opt/dropsonde/*) rm -f "$link" ;;
    esac
done
