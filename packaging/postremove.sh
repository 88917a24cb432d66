#!/bin/sh
# On purge: the store and the user go too (a plain remove keeps the state
# in /var/lib/vipsmart, as Debian packages do).
set -e
if [ "$1" = "purge" ]; then
	rm -rf /var/lib/vipsmart
	if getent passwd vipsmart >/dev/null && command -v deluser >/dev/null 2>&1; then
		deluser --quiet --system vipsmart >/dev/null 2>&1 || true
	elif getent passwd vipsmart >/dev/null; then
		userdel vipsmart >/dev/null 2>&1 || true
	fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
