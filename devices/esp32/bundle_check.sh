#!/usr/bin/env bash
# Checks that the Arduino library made by scripts/esp32-bundle.sh is self-contained: every
# bundled source compiles with only the bundle on the include path, as the firmware's
# toolchain will see it (C++17, no exceptions, no RTTI). ESP32 toolchains are not available
# here; the core's ARM build is checked by devices/mcu.
# Usage: bundle_check.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
rm -rf "$work"
"$src/scripts/esp32-bundle.sh" "$work/Outpost"
for f in "$work"/Outpost/src/*.cpp; do
  g++ -std=gnu++17 -fno-exceptions -fno-rtti -Wall -Werror -I"$work/Outpost/src" \
    -c "$f" -o "$work/$(basename "$f" .cpp).o"
done
# The sketch's own includes of the core must resolve inside the bundle.
for h in $(sed -n 's/^#include "\(outpost\/[^"]*\)".*/\1/p' "$src"/devices/esp32/OutpostNode/*.h); do
  test -f "$work/Outpost/src/$h" || { echo "bundle is missing $h (included by the sketch)"; exit 1; }
done
echo "bundle_check: $(ls "$work"/*.o | wc -l) sources compile from the bundle alone"
