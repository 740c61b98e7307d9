#!/bin/sh
# The Forge cache, parse cache and submission record under each server vardir.
# Where a package owns that directory (the official layout keeps Puppet Server's
# bundled gem there), only what no package owns goes.
for cache in /var/lib/puppetserver/dropsonde /opt/puppetlabs/server/data/puppetserver/dropsonde; do
    if [ ! -d "$cache" ] || [ -L "$cache" ]; then
        continue
    fi
    if owned_by_a_package "$cache"; then
        for entry in "$cache"/* "$cache"/.[!.]*; do
            if { [ -e "$entry" ] || [ -L "$entry" ]; } && ! owned_by_a_package "$entry"; then
                rm -rf "$entry"
            fi
        done
    else
        rm -rf "$cache"
    fi
done
