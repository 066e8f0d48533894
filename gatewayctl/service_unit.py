"""The systemd unit `gatewayctl install-service` writes, rendered from the paths of one installation.

`packaging/gateway.service` is this render for the default paths (a test keeps them equal), for
operators who install by hand. Hardening: a dedicated user, the whole file system read-only except the
data dir (ProtectSystem=strict + ReadWritePaths) and a cache dir for the unpacked .pyz, no home
directories, private /tmp and /dev, no capabilities, no new privileges, the system-service syscall set,
IPv4/IPv6/Unix sockets only, umask 077. `Type=notify`: systemd waits for READY (database open, socket
listening), pings the watchdog, and `systemctl reload` sends SIGHUP (server/serving.py).
MemoryDenyWriteExecute is left off: ctypes and cffi callbacks (in libraries the server may load) need
writable executable memory, and a service that cannot start is worse than the 0.1 it adds to the score.
"""

from __future__ import annotations

from dataclasses import dataclass

STOP_MARGIN_S = 15  # beyond the drain grace: streams ended by the grace are recorded, the WAL checkpointed


@dataclass(frozen=True)
class UnitSpec:
    exec_start: str  # the command that runs gatewayctl (a console script, or python3 + the .pyz)
    config: str
    data_dir: str
    env_file: str
    user: str = "gateway"
    grace_s: float = 30.0

    @classmethod
    def defaults(cls) -> UnitSpec:
        """The paths the README's manual install uses."""
        return cls(
            exec_start="/usr/bin/python3 /opt/gateway/gatewayctl.pyz",
            config="/etc/gateway/config.toml",
            data_dir="/etc/gateway/data",
            env_file="/etc/gateway/env",
        )


def render(spec: UnitSpec) -> str:
    stop = int(spec.grace_s + STOP_MARGIN_S + 0.999)
    return f"""# The LLM gateway's systemd unit, written by `gatewayctl install-service` (README: Running as a service).
# Secrets (provider API keys, Stripe) go in {spec.env_file} (NAME=value lines, mode 0600), never here.
[Unit]
Description=LLM API gateway
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
User={spec.user}
Group={spec.user}
ExecStart={spec.exec_start} serve --config {spec.config}
ExecReload=/bin/kill -HUP $MAINPID
EnvironmentFile=-{spec.env_file}
# A .pyz unpacks its dependencies once, here (the only other place the service may write).
Environment=SHIV_ROOT=/var/cache/gateway
CacheDirectory=gateway
Restart=on-failure
RestartSec=2
TimeoutStartSec=120
# SIGTERM drains for server.shutdown_grace_s ({spec.grace_s:g} s), then records the streams it ended.
TimeoutStopSec={stop}
WatchdogSec=30
LimitNOFILE=65536
UMask=0077
ReadWritePaths={spec.data_dir}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
PrivateDevices=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
DevicePolicy=closed
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""
