#!/bin/sh
# tests/bench/bench_frames.sh [BUILD_DIR]: frames/s at saturation only (no
# connection ramp): each server gets FLOOD_PILES piles keeping FLOOD_WINDOW
# heartbeats in flight, and the result is compared with the plain libevent echo
# server measured in the same run. Same environment as bench_connections.sh.
FRAMES_ONLY=1 TARGET=${TARGET:-0} exec "$(dirname "$0")/bench_connections.sh" "$@"
