#!/bin/sh
# Take away the links link-shims.sh made (only ours).
for pair in $links; do
    case "$(readlink "${pair%%:*}" 2>/dev/null)" in
        "$lib"/*|"$legacy_lib"/*) rm -f "${pair%%:*}" ;;
    esac
done
