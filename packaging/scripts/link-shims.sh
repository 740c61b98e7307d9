#!/bin/sh
# Put the `puppetserver dropsonde` shim into each Puppet Server CLI directory
# present (Debian's, and the official/OpenVox packages'), and on the official
# layout point Puppet Server's built-in analytics run at dropsonde's scheduled
# submission (README: one submitter per site). Whatever another package
# installed there was set aside first (dpkg-divert on Debian/Ubuntu, the rpm
# scriptlets on EL); a file put there by hand is left alone.
for apps in /usr/share/puppetserver/cli/apps /opt/puppetlabs/server/apps/puppetserver/cli/apps; do
    if [ -d "$apps" ] && { [ -L "$apps/dropsonde" ] || [ ! -e "$apps/dropsonde" ]; }; then
        ln -sfn /usr/lib/dropsonde/puppetserver-dropsonde "$apps/dropsonde"
    fi
done
gem_bin=/opt/puppetlabs/server/data/puppetserver/dropsonde/bin
if [ -d "$gem_bin" ] && [ "$(readlink -f "$gem_bin")" = "$gem_bin" ] \
        && { [ -L "$gem_bin/dropsonde" ] || [ ! -e "$gem_bin/dropsonde" ]; }; then
    ln -sfn /usr/lib/dropsonde/puppetserver-analytics.rb "$gem_bin/dropsonde"
fi
