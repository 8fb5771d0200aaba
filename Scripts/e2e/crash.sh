#!/usr/bin/env bash
# CI size of Scripts/crash (the full size, 100 runs, and its figures are in the README).
exec "$(dirname "$0")/../crash" 20
