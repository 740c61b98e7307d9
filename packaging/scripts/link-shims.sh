#!/bin/sh
# Put the `puppetserver dropsonde` shim into each Puppet Server CLI directory
# present (Debian's, and the official/OpenVox packages'), and on the official
# layout point Puppet Server's built-in analytics run at dropsonde's scheduled
# submission (README: one submitter per site). Whatever another package
# installed there was set aside first (dpkg-divert on Debian/Ubuntu, the rpm
# scriptlets on EL); a file put there by hand is left alone, and so is a
# directory reached through a symbolic link (the gem's bin/ lies in a
# directory the puppet user owns: root follows no link planted there).
for pair in $links; do
    place=${pair%%:*}
    dir=${place%/*}
    if [ -d "$dir" ] && [ "$(readlink -f "$dir")" = "$dir" ] && { [ -L "$place" ] || [ ! -e "$place" ]; }; then
        ln -sfn "${pair#*:}" "$place"
    fi
done
