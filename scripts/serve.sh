#!/usr/bin/env bash
# `make run`: the portal's background processes beside gunicorn. When gunicorn stops
# (Ctrl-C, a signal to this script, an error) every process started here is stopped too.
#   scripts/serve.sh VENV HOST:PORT [GUNICORN_WORKERS]
# To add a process (a listener), add a `start` line next to the job worker's.
set -uo pipefail
VENV=${1:?usage: serve.sh VENV HOST:PORT [WORKERS]}
BIND=${2:?usage: serve.sh VENV HOST:PORT [WORKERS]}
WORKERS=${3:-3}
pids=()

start() {  # start NAME COMMAND...: a background process, stopped when this script ends
    local name=$1; shift
    "$@" &
    pids+=("$!")
    echo "serve.sh: started $name (pid $!)"
}

stop_all() {
    trap - EXIT INT TERM
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start "job worker" "$VENV/bin/qaportal" worker --workers 2
# The hospital feeds' listeners, on loopback by default (QAPORTAL_DICOM_LISTEN_PORT, 11112;
# QAPORTAL_HL7_LISTEN_PORT, 2575; their *_BIND settings). One that cannot start (its port
# taken) says why and exits; the portal is served all the same.
start "DICOM listener" "$VENV/bin/qaportal" dicom-listen
start "HL7 listener" "$VENV/bin/qaportal" hl7-listen

# The access log carries no query string or referrer (qaportal/gunicorn_config.py).
start gunicorn "$VENV/bin/gunicorn" --config python:qaportal.gunicorn_config \
    --workers "$WORKERS" --bind "$BIND" --access-logfile - --timeout 120 'qaportal:create_app()'
wait "${pids[-1]}"  # gunicorn: when it ends, the EXIT trap stops the others
