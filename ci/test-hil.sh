#!/usr/bin/env bash
# edgepack-hil against "boards" on this machine, through a real sshd on loopback
# (ci/setup-sshd.sh): an x86_64 board, an aarch64 board whose binaries run under qemu-aarch64
# (Cortex-A72), each also deployed to as Greengrass lays components out (the model's Install
# step, the agent's Run step, DetectAnomalies through it), and one board per fault: a refused key, a closed port, a step that hangs, a
# board whose connection drops mid-run (its sshd killed), a full disk (a 1 MiB tmpfs), a board
# that is not what the inventory says and one that cannot execute the binaries. Each must end
# with its status, with no hang; the good boards must pass, with JSON and JUnit reports and the
# table. Needs the earlier stages' builds (ci/test.sh runs this last): kernel-report for both
# architectures, the agents and the packaged components of ci/test-agent.sh.
#   ci/test-hil.sh [HIL_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
hil=$(realpath "${1:-target/debug/edgepack-hil}")
work=$PWD/target/hil-ci
cleanup() {
    local d
    for d in "$work"/sshd-*; do
        if [ -d "$d" ]; then bash ci/setup-sshd.sh stop "$d"; fi
    done
    if mountpoint -q "$work/full" 2>/dev/null; then umount "$work/full"; fi
    pkill -f "^sleep 360[01]" || true
}
cleanup
rm -rf "$work"
mkdir -p "$work/bundles"
# The exit status stays the checker's.
trap 'rc=$?; cleanup; exit $rc' EXIT

# The bundles, from what the earlier stages built: the binaries, the installed model component,
# and the model and agent components as ci/test-agent.sh's packaging job published them (for
# the Greengrass deployment step).
bundle() { # ARCH KERNEL_REPORT AGENT
    local e2e=target/agent-e2e/$1
    mkdir -p "$work/bundles/$1"
    cp "$2" "$work/bundles/$1/kernel-report"
    cp "$3" "$work/bundles/$1/edgepack-agent"
    cp -r "$e2e/greengrass/v2/packages/artifacts/line.Defects/1.0.0" "$work/bundles/$1/component"
    cp -r "$e2e/home/buckets/parts/line" "$work/bundles/$1/greengrass"
}
bundle x86_64 target/debug/kernel-report target/agent-ci/x86_64/edgepack-agent
bundle aarch64 target/cross/aarch64-unknown-linux-gnu/debug/kernel-report target/agent/aarch64/edgepack-agent

read -r port key user < <(bash ci/setup-sshd.sh start "$work/sshd-a")
read -r port_b key_b _ < <(bash ci/setup-sshd.sh start "$work/sshd-b")
ssh-keygen -q -t ed25519 -N '' -f "$work/stranger_key"
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
full_case=yes
mkdir -p "$work/full"
if ! mount -t tmpfs -o size=1m tmpfs "$work/full" 2>/dev/null; then
    full_case="skipped: the disk-full case needs a 1 MiB tmpfs (mount as root)"
fi
# Wrappers a board runs its binaries under that hang in the kernel step only (the copy step's
# start-up check of the agent goes through).
for n in 3600 3601; do
    printf '#!/bin/sh\ncase "$1" in *kernel-report) sleep %s;; esac\nexec "$@"\n' "$n" > "$work/hang-$n"
    chmod +x "$work/hang-$n"
done
x86='target_platform = { os = "LINUX", arch = "X86_64" }'
arm='target_platform = { os = "LINUX", arch = "ARM64" }
compiler_options = '"'"'{"mcpu": "cortex-a72"}'"'"
qemu='prefix = "qemu-aarch64 -cpu cortex-a72"'
cat > "$work/boards.toml" <<TOML
[defaults]
user = "$user"
key = "$key"
port = $port
known_hosts = "$work/known_hosts"
connect_timeout_secs = 5
step_timeout_secs = 600

[[board]]
name = "x86-loopback"
$x86
workdir = "$work/boards/x86"

[[board]]
name = "a72-qemu"
$arm
$qemu
workdir = "$work/boards/a72"

[[board]]
name = "stranger-key"
$x86
key = "$work/stranger_key"
workdir = "$work/boards/stranger"

[[board]]
name = "closed-port"
$x86
port = $closed
workdir = "$work/boards/closed"

[[board]]
name = "hangs"
$x86
prefix = "$work/hang-3600"
step_timeout_secs = 8
workdir = "$work/boards/hangs"

[[board]]
name = "drops"
$x86
port = $port_b
key = "$key_b"
prefix = "$work/hang-3601"
workdir = "$work/boards/drops"

[[board]]
name = "says-arm64"
$arm
workdir = "$work/boards/says-arm64"

[[board]]
name = "cannot-exec"
$arm
prefix = "env"
workdir = "$work/boards/cannot-exec"
TOML
if [ "$full_case" = yes ]; then
    printf '\n[[board]]\nname = "full-disk"\n%s\nworkdir = "%s"\n' "$x86" "$work/full/w" >> "$work/boards.toml"
fi
# Every board is on this machine.
sed -i 's/^\[\[board\]\]$/[[board]]\nhost = "127.0.0.1"/' "$work/boards.toml"

# The drop: once the "drops" board's kernel step is running (its sleep), kill that board's
# sshd processes (the listener and the session's): the client sees the connection end.
(
    for _ in $(seq 600); do
        [ -x "$work/boards/drops/kernel-report" ] && pgrep -f "^sleep 3601" >/dev/null && break
        sleep 0.2
    done
    sleep 1
    listener=$(cat "$work/sshd-b/sshd.pid")
    tree() { local p; for p in $(pgrep -P "$1" || true); do echo "$p"; tree "$p"; done; }
    for p in $listener $(tree "$listener"); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sshd ]; then kill -9 "$p" 2>/dev/null || true; fi
    done
) &
dropper=$!

set +e
timeout 1200 "$hil" --inventory "$work/boards.toml" --bundles "$work/bundles" --out "$work/reports"
rc=$?
set -e
wait $dropper || true
echo "edgepack-hil exit status $rc (1: some board did not pass, as intended here)"
python3 - "$work/reports" "$rc" "$full_case" <<'PY'
import json, os, sys
reports, rc, full_case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
doc = json.load(open(os.path.join(reports, "hil.json")))
boards = {b["board"]: b for b in doc["boards"]}
want = {
    "x86-loopback": "passed", "a72-qemu": "passed", "stranger-key": "key-refused",
    "closed-port": "unreachable", "hangs": "timeout", "drops": "connection-lost",
    "says-arm64": "wrong-target", "cannot-exec": "wrong-architecture",
}
if full_case == "yes":
    want["full-disk"] = "disk-full"
passed = failed = 0
def check(name, ok, detail=""):
    global passed, failed
    print(f"test hil::{name} ... {'ok' if ok else 'FAILED'}" + (f"  ({detail})" if detail and not ok else ""))
    passed, failed = passed + ok, failed + (not ok)
check("exit_status_is_1_when_a_board_fails", rc == 1, f"exit {rc}")
for name, status in want.items():
    got = boards.get(name, {}).get("status")
    check(f"{name}_ends_{status.replace('-', '_')}", got == status, f"got {got}: {boards.get(name, {}).get('steps')}")
for name in ("x86-loopback", "a72-qemu"):
    b = boards.get(name, {})
    steps = {s["step"]: s for s in b.get("steps", [])}
    k = steps.get("kernel-parity", {}).get("detail") or {}
    check(f"{name}_kernel_parity_report_came_back", k.get("cases", 0) > 0 and k.get("failures") == 0
          and os.path.exists(os.path.join(reports, name, "kernels.xml")), str(k))
    m = steps.get("model-parity", {}).get("detail") or {}
    check(f"{name}_model_parity_passed", m.get("status") == "PASSED", str(m))
    a = steps.get("agent", {}).get("detail") or {}
    check(f"{name}_agent_answered", (a.get("agent_p50_ms") or 0) > 0, str(a))
    h = b.get("host_figure") or {}
    check(f"{name}_host_figure_measured", (h.get("p50_ms") or 0) > 0, str(h))
    g = steps.get("greengrass", {}).get("detail") or {}
    check(f"{name}_greengrass_install_ran_device_parity", (g.get("device_parity") or {}).get("status") == "PASSED"
          and os.path.exists(os.path.join(reports, name, "gg-device-parity.json")), str(g))
    check(f"{name}_greengrass_agent_answered_detect_anomalies",
          ((g.get("detect_anomalies") or {}).get("agent_p50_ms") or 0) > 0, str(g))
steps_of = lambda n: {s["step"]: s for s in boards.get(n, {}).get("steps", [])}
hangs = steps_of("hangs")
check("hangs_partial_reports_kept", "copy" in hangs and hangs["copy"]["passed"], str(hangs.keys()))
ce = steps_of("cannot-exec").get("copy", {})
check("cannot_exec_names_the_architecture", "cannot run the bundle's aarch64 binaries" in ce.get("status", ""), str(ce))
check("json_names_every_boards_host", all(b.get("host", "").startswith("127.0.0.1:") for b in doc["boards"]),
      str([b.get("host") for b in doc["boards"]]))
junit = open(os.path.join(reports, "hil.xml")).read()
check("junit_has_a_suite_per_board", all(f'name="{n}"' in junit for n in want), "")
if full_case != "yes":
    print(f"test hil::full-disk_ends_disk_full ... ignored, {full_case}")
print(f"test result: {'ok' if failed == 0 else 'FAILED'}. {passed} passed; {failed} failed; "
      f"{0 if full_case == 'yes' else 1} ignored; 0 measured; 0 filtered out")
sys.exit(1 if failed else 0)
PY
