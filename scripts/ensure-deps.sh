#!/usr/bin/env bash
# Installs the system packages the build needs, when they are missing (Debian, as root).
#   libprotobuf-c-dev     protobuf-c runtime, header and pkg-config file (the C wire module links it)
#   protobuf-c-compiler   protoc-c (scripts/gen-proto.sh; the freshness test runs it)
#   libsqlite3-dev        SQLite (the durable worker registry)
#   pkg-config            how SwiftPM finds libprotobuf-c and sqlite3
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists sqlite3 2>/dev/null || [ ! -f /usr/include/sqlite3.h ]; then
    missing+=(libsqlite3-dev)
fi
if ! pkg-config --exists libprotobuf-c 2>/dev/null || [ ! -f /usr/include/protobuf-c/protobuf-c.h ]; then
    missing+=(libprotobuf-c-dev)
fi
command -v protoc-c >/dev/null 2>&1 || missing+=(protobuf-c-compiler)

if [ ${#missing[@]} -gt 0 ]; then
    echo "ensure-deps: installing ${missing[*]}" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "ensure-deps: run as root, or install: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "ensure-deps: swift is not on PATH (Swift 6.2 or later is needed)" >&2
    exit 1
fi
