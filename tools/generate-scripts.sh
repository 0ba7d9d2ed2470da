#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
exec python3 "$(dirname "$0")/../src/pymemtrace/trace/scripts.py" "${1:---write}" "$(dirname "$0")/../toolkit/"
