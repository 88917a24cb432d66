#!/bin/sh
# Before removal (not upgrade): stop and disable the daemon; it withdraws
# its announcements as it stops.
set -e
if [ "$1" = "remove" ] || [ "$1" = "purge" ]; then
	if [ -d /run/systemd/system ]; then
		systemctl disable --now vipsmart >/dev/null 2>&1 || true
	fi
fi
exit 0
