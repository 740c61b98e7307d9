#!/bin/sh
# The Forge cache, parse cache and submission record under each server vardir.
# Where a package owns that directory (the official layout keeps Puppet Server's
# bundled gem there), only what no package owns goes.
owned_by_a_package() {
    dpkg-query --search "$1" >/dev/null 2>&1
}
for vardir in $vardirs; do
    cache=$vardir/dropsonde
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
