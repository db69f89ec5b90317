#!/usr/bin/env bash
# Build the React example from a clean install, as CI does, so it never rots:
# `npm ci` installs exactly package-lock.json; `npm run build` type-checks and bundles.
# Needs node >= 20.19 and npm (the npm registry must be reachable for `npm ci`).
set -euo pipefail
cd "$(dirname "$0")/../../examples/react"
npm ci --no-audit --no-fund
npm run build
test -s dist/index.html
