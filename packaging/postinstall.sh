#!/bin/sh
# After install or upgrade: the system user, and systemd told about the
# unit. The service is neither enabled nor started: it needs a name in
# /etc/vipsmart/vipsmart.yaml first (then: systemctl enable --now vipsmart).
set -e
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers /usr/lib/sysusers.d/vipsmart.conf
elif ! getent passwd vipsmart >/dev/null; then
	adduser --system --group --home /var/lib/vipsmart --no-create-home vipsmart
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	# An upgrade restarts a running daemon on the new binary.
	if systemctl is-active --quiet vipsmart; then systemctl try-restart vipsmart || true; fi
fi
exit 0
