#!/usr/bin/env bash
# CI size of Scripts/stress (the full size, 1000 x 32, and its figures are in docs/reliability.md).
exec "$(dirname "$0")/../stress" 200 8
