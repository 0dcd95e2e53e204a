#!/usr/bin/env bash
# A throwaway OpenSSH server on loopback for edgepack-hil's tests: Debian's openssh-server
# (installed with apt when missing), its own host key, a client key pair and authorized_keys in
# DIR, listening on 127.0.0.1 only, key logins only, for the user running this script.
#   bash ci/setup-sshd.sh start DIR     prints "PORT KEYFILE USER" once sshd accepts connections
#   bash ci/setup-sshd.sh stop DIR      stops it (idempotent)
# Several servers may run at once (one DIR each): the tests kill one mid-run.
# SSHD_SETENV="NAME=VALUE ..." sets variables in every session (sshd_config's SetEnv: the CUDA
# libraries' folder on a GPU machine, where no system linker path names them).
set -euo pipefail
cmd=${1:?usage: ci/setup-sshd.sh start|stop DIR} dir=${2:?usage: ci/setup-sshd.sh start|stop DIR}
if [ "$cmd" = stop ]; then
    if [ -f "$dir/sshd.pid" ]; then
        kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
        rm -f "$dir/sshd.pid"
    fi
    exit 0
fi
[ "$cmd" = start ] || { echo "usage: ci/setup-sshd.sh start|stop DIR" >&2; exit 2; }
if ! command -v sshd >/dev/null && [ ! -x /usr/sbin/sshd ]; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends openssh-server; } >&2 \
        || { echo "ci/setup-sshd.sh: cannot install openssh-server" >&2; exit 1; }
fi
mkdir -p "$dir"
dir=$(realpath "$dir")
[ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
[ -f "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
cp "$dir/client_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
# Privilege separation wants this folder when sshd runs as root.
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PrintMotd no
AcceptEnv LANG
CFG
[ -z "${SSHD_SETENV:-}" ] || echo "SetEnv $SSHD_SETENV" >>"$dir/sshd_config"
"$(command -v sshd || echo /usr/sbin/sshd)" -f "$dir/sshd_config" -E "$dir/sshd.log"
for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
        echo "$port $dir/client_key $(id -un)"
        exit 0
    fi
    sleep 0.1
done
echo "ci/setup-sshd.sh: sshd did not start (log: $dir/sshd.log)" >&2
cat "$dir/sshd.log" >&2 || true
exit 1
