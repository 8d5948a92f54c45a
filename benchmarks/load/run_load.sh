#!/usr/bin/env bash
# Load test: gunicorn with the Procfile's settings on 127.0.0.1, locust (in its own venv,
# .venv-load: locust brings gevent) against it, worker memory sampled from /proc.
#
#   bash benchmarks/load/run_load.sh [--users 50] [--time 60s] [--spawn-rate 10]
#                                    [--wait 5-15] [--p95-ms 300] [--rss-budget-mb 700] [--out DIR]
#   (./run load passes its arguments here; LOAD_USERS, LOAD_TIME, ... work too)
#
# Models: data/ (the samples).  Each upload posts a fresh generated variant of
# cnn_fp32.onnx (benchmarks/load/make_upload_models.py), so its analysis is computed.
# Exit status: non-zero on any failed request or check, callback p95 over the limit,
# worker peak RSS over the budget, or a traceback / worker timeout in gunicorn's log.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

USERS=${LOAD_USERS:-50}; RUN_TIME=${LOAD_TIME:-60s}; SPAWN=${LOAD_SPAWN_RATE:-}
P95=${LOAD_P95_MS:-300}; BUDGET=${LOAD_RSS_BUDGET_MB:-700}; OUT=${LOAD_OUT:-}; WAIT=${LOAD_WAIT:-5-15}
while [ $# -gt 0 ]; do
  case "$1" in
    --users) USERS=$2; shift 2 ;;
    --time|--run-time) RUN_TIME=$2; shift 2 ;;
    --spawn-rate) SPAWN=$2; shift 2 ;;
    --p95-ms) P95=$2; shift 2 ;;
    --rss-budget-mb) BUDGET=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --wait) WAIT=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run_load.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
SPAWN=${SPAWN:-$(( USERS / 5 > 1 ? USERS / 5 : 1 ))}
OUT=${OUT:-$ROOT/out/load/$(date +%Y%m%d-%H%M%S)-u${USERS}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

APP_PY=${APP_PY:-$ROOT/.venv/bin/python}
LOAD_VENV=${LOAD_VENV:-$ROOT/.venv-load}
if [ ! -x "$LOAD_VENV/bin/locust" ]; then
  echo "creating $LOAD_VENV with locust (its own venv: locust brings gevent)"
  python3 -m venv "$LOAD_VENV"
  "$LOAD_VENV/bin/python" -m pip install -q --upgrade pip
  "$LOAD_VENV/bin/python" -m pip install -q "locust==2.47.0"
fi

# fresh upload models: enough for one per upload of the run
N_MODELS=$(( USERS * 8 > 50 ? USERS * 8 : 50 ))
"$APP_PY" benchmarks/load/make_upload_models.py data/cnn_fp32.onnx "$OUT/upload-models" "$N_MODELS" >/dev/null

PORT=${LOAD_PORT:-$("$APP_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
# the Procfile's command, bound to the loopback interface
CMD=$(sed -n 's/^web: *//p' Procfile)
CMD=${CMD//0.0.0.0:/127.0.0.1:}
case "$CMD" in gunicorn\ *) ;; *) echo "unexpected Procfile command: $CMD" >&2; exit 2 ;; esac
echo "gunicorn: $CMD   (PORT=$PORT)"

export QUANTLENS_MODEL_DIR=$ROOT/data QUANTLENS_CACHE_DIR=$OUT/cache QUANTLENS_UPLOAD_DIR=$OUT/uploads
unset QUANTLENS_DEBUG QUANTLENS_BASIC_AUTH QUANTLENS_BASIC_AUTH_FILE QUANTLENS_USER_HEADER
PORT=$PORT PATH="$(dirname "$APP_PY"):$PATH" bash -c "exec $CMD" > "$OUT/gunicorn.log" 2>&1 &
GPID=$!
cleanup() {
  kill -TERM "$GPID" 2>/dev/null || true
  wait "$GPID" 2>/dev/null || true
}
trap cleanup EXIT

up=0
for _ in $(seq 1 150); do
  if "$APP_PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=2)" 2>/dev/null; then
    up=1; break
  fi
  kill -0 "$GPID" 2>/dev/null || break
  sleep 0.2
done
if [ "$up" != 1 ]; then echo "gunicorn did not come up:"; cat "$OUT/gunicorn.log"; exit 1; fi

"$APP_PY" benchmarks/load/rss_sampler.py "$GPID" "$OUT/rss.json" &
SPID=$!

echo "locust: $USERS users, spawn rate $SPAWN/s, think time $WAIT s, $RUN_TIME -> $OUT (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
rc=0
# (run under a small wrapper that records locust's own CPU time: client and server share this machine)
LOAD_WAIT=$WAIT LOAD_UPLOAD_MODELS="$OUT/upload-models" "$APP_PY" -c '
import json, resource, subprocess, sys, time
t = time.time(); rc = subprocess.call(sys.argv[2:]); r = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"cpu_s": r.ru_utime + r.ru_stime, "wall_s": time.time() - t, "rc": rc}, open(sys.argv[1], "w"))
sys.exit(rc)' "$OUT/locust_cpu.json" "$LOAD_VENV/bin/locust" -f benchmarks/load/locustfile.py --headless \
  --host "http://127.0.0.1:$PORT" --users "$USERS" --spawn-rate "$SPAWN" --run-time "$RUN_TIME" \
  --stop-timeout 10 --csv "$OUT/results" --json-file "$OUT/results" --only-summary --loglevel WARNING \
  > "$OUT/locust.log" 2>&1 || rc=$?

cleanup
trap - EXIT
wait "$SPID" 2>/dev/null || true

echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg); CPUs: $(nproc)"
"$APP_PY" benchmarks/load/read_locust_csv.py "$OUT" --p95-ms "$P95" --rss-budget-mb "$BUDGET" || rc=1
if grep -q -e "Traceback" -e "WORKER TIMEOUT" "$OUT/gunicorn.log"; then
  echo "gunicorn log has a traceback or a worker timeout:"; grep -n -m5 -e "Traceback" -e "WORKER TIMEOUT" "$OUT/gunicorn.log"
  rc=1
fi
echo "results in $OUT (locust rc and gate -> exit $rc)"
exit $rc
