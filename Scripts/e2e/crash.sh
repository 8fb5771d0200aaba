#!/usr/bin/env bash
# CI size of Scripts/crash (the full size, 100 runs, and its figures are in docs/reliability.md).
exec "$(dirname "$0")/../crash" 20
