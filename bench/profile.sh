#!/bin/sh
# Profile Lapine with py-spy while the load generator runs the 1 -> 1 auto-ack and manual-ack
# scenarios (or the scenarios given), and print the top functions by self time.
#
#   bench/profile.sh                       # auto_ack and manual_ack, 10 s each
#   bench/profile.sh fanout,topic 15       # other scenarios, 15 s each
#
# py-spy attaches to the broker after the warm-up and samples the measured window only
# (py-spy record --pid PID --format raw --nolineno --nonblocking); the raw profiles and a
# markdown summary land in bench/results/. Needs py-spy (pip install py-spy) and ptrace rights.
set -eu
cd "$(dirname "$0")/.."
command -v py-spy >/dev/null 2>&1 || python -m pip install py-spy
exec python bench/run.py --profile --scenarios "${1:-auto_ack,manual_ack}" --duration "${2:-10}"
