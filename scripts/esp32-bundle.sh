#!/usr/bin/env bash
# Bundles the node core (devices/core) and what it uses (libs/mqtt's freestanding wire layer,
# libs/base's backoff) as an Arduino library, "Outpost", for the ESP32 firmware:
#   - PlatformIO picks it up from devices/esp32/lib/Outpost (the default output);
#   - Arduino IDE: copy that folder to ~/Arduino/libraries/ (or zip it and use
#     Sketch > Include Library > Add .ZIP Library).
# Usage: scripts/esp32-bundle.sh [OUTPUT_DIR]     (default devices/esp32/lib/Outpost)
# Guide: docs/device_setup.md
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/devices/esp32/lib/Outpost}

case "${1:-}" in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

version=$(sed -n 's/^project(outpost VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
rm -rf "$out"
mkdir -p "$out/src"

# Public headers keep their include paths ("outpost/device/node.h"); an Arduino library's src/
# is on the include path. Sources and private headers go flat into src/.
copy_tree() { (cd "$1" && find . -name '*.h' -print0 | xargs -0 -I{} cp --parents {} "$out/src/"); }
copy_tree "$root/devices/core/include"
mkdir -p "$out/src/outpost/mqtt" "$out/src/outpost/base"
cp "$root/libs/mqtt/include/outpost/mqtt/wire.h" "$out/src/outpost/mqtt/"
cp "$root/libs/base/include/outpost/base/backoff.h" "$out/src/outpost/base/"
find "$root/devices/core/src" -maxdepth 1 \( -name '*.cpp' -o -name '*.h' \) \
  ! -name '*_test.cpp' ! -name '*_test.h' -exec cp {} "$out/src/" \;
cp "$root/libs/mqtt/src/wire.cpp" "$out/src/outpost_mqtt_wire.cpp"
cp "$root/libs/base/src/backoff.cpp" "$out/src/outpost_backoff.cpp"

cat >"$out/library.properties" <<PROPS
name=Outpost
version=$version
author=Outpost contributors
maintainer=Outpost contributors
sentence=The Outpost sensor node core: QoS 1 MQTT with an offline buffer, commands, battery policy.
paragraph=Portable, allocation-free after setup; bound to the ESP32 by the OutpostNode sketch.
category=Communication
url=https://github.com/outpost-iot/outpost
architectures=*
PROPS
count=$(find "$out/src" -name '*.cpp' | wc -l)
echo "esp32-bundle: wrote $out ($count source files)"
