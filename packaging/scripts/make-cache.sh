#!/bin/sh
# The cache belongs to the user Puppet Server (and every scheduled run) runs as,
# mode 0700. A missing one is created by that user, so root never writes into
# the puppet-owned vardir. One owned by someone else (left by a root run of
# dropsonde 0.1.0, or the official package's root-owned gem home, which shares
# the path) changes owner: the directory itself and the plain files at its top
# (dropsonde's state), never what lies below (the gem's files). chown -h never
# follows a symbolic link; the mode is set by the puppet user.
if uid=$(id -u puppet 2>/dev/null) && gid=$(id -g puppet 2>/dev/null); then
    for vardir in $vardirs; do
        cache=$vardir/dropsonde
        if [ ! -d "$vardir" ] || [ -L "$cache" ]; then
            continue
        fi
        if [ ! -e "$cache" ]; then
            setpriv --reuid="$uid" --regid="$gid" --init-groups -- mkdir -m 0700 "$cache" || true
        elif [ -d "$cache" ] && [ "$(stat -c %u "$cache")" != "$uid" ]; then
            chown -h "$uid:$gid" "$cache"
            for state in "$cache"/*; do
                if [ -f "$state" ] && [ ! -L "$state" ] && [ "$(stat -c %u "$state")" = 0 ]; then
                    chown -h "$uid:$gid" "$state"
                fi
            done
            setpriv --reuid="$uid" --regid="$gid" --init-groups -- chmod 0700 "$cache" || true
        fi
    done
fi
