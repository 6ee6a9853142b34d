#!/usr/bin/env bash
# Compiles devices/core and what it uses (libs/mqtt's freestanding wire layer, libs/base's
# backoff) for a Cortex-M4 with arm-none-eabi-g++ (-Os, no exceptions, no RTTI), links a tiny
# bare-metal main (devices/mcu/main.cpp) against newlib-nano, prints code and RAM size, and fails
# when they exceed the budget. Budget and measurements: docs/device_core.md, docs/benchmarks.md.
#
# Usage: check_size.sh <source dir> <build dir>
# Env:   OUTPOST_MCU_TEXT_BUDGET (bytes of flash, default 32768)
#        OUTPOST_MCU_RAM_BUDGET  (bytes of data+bss, default 12288)
set -euo pipefail

src=${1:?usage: check_size.sh <source dir> <build dir>}
out=${2:?usage: check_size.sh <source dir> <build dir>}
text_budget=${OUTPOST_MCU_TEXT_BUDGET:-32768}
ram_budget=${OUTPOST_MCU_RAM_BUDGET:-12288}

for tool in arm-none-eabi-g++ arm-none-eabi-size; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FAIL: $tool not found. The MCU size check needs the ARM toolchain:" >&2
    echo "  sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib" >&2
    echo "  (scripts/install-deps.sh installs it)" >&2
    exit 1
  fi
done

# Keep in sync with devices/core/CMakeLists.txt (OUTPOST_DEVICE_CORE_SOURCES).
sources=(
  devices/core/src/config.cpp
  devices/core/src/json_writer.cpp
  devices/core/src/payload.cpp
  devices/core/src/command.cpp
  devices/core/src/reading_ring.cpp
  devices/core/src/node.cpp
  libs/mqtt/src/wire.cpp
  libs/base/src/backoff.cpp
)

# Freestanding rule: no heap containers, streams, exceptions or platform headers in the core.
forbidden='#include <(string|vector|map|unordered_map|list|deque|functional|memory|variant|iostream|sstream|fstream|thread|mutex|chrono|stdexcept|exception|cstdio|stdio.h|Arduino.h|esp_[a-z_]*.h)>'
headers=$(cd "$src" && ls devices/core/include/outpost/device/*.h devices/core/src/*.h \
  libs/mqtt/include/outpost/mqtt/wire.h libs/base/include/outpost/base/backoff.h | grep -v _test)
if bad=$(cd "$src" && grep -nE "$forbidden" "${sources[@]}" $headers); then
  echo "FAIL: the device core includes hosted headers:" >&2
  echo "$bad" >&2
  exit 1
fi

mkdir -p "$out"
flags=(-std=c++17 -Os -mcpu=cortex-m4 -mthumb -fno-exceptions -fno-rtti -ffunction-sections
       -fdata-sections -Wall -Wextra -Werror
       -I"$src/devices/core/include" -I"$src/devices/core/src" -I"$src/libs/mqtt/include"
       -I"$src/libs/base/include")
objects=()
for s in "${sources[@]}" devices/mcu/main.cpp; do
  o="$out/$(echo "$s" | tr / _).o"
  arm-none-eabi-g++ "${flags[@]}" -c "$src/$s" -o "$o"
  objects+=("$o")
done
arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb --specs=nano.specs --specs=nosys.specs \
  -Wl,--gc-sections -Wl,-Map="$out/node.map" "${objects[@]}" -o "$out/node.elf"

echo "== object sizes (before --gc-sections) =="
arm-none-eabi-size "${objects[@]}" | sed "s|$out/||"
echo "== linked image (newlib-nano, tiny main) =="
arm-none-eabi-size "$out/node.elf" | sed "s|$out/||"
read -r text data bss _ < <(arm-none-eabi-size "$out/node.elf" | tail -1)
ram=$((data + bss))
echo "flash (text+data): $((text + data)) bytes, budget $text_budget"
echo "static RAM (data+bss): $ram bytes, budget $ram_budget (includes the node's 8 KiB arena)"
status=0
if (( text + data > text_budget )); then
  echo "FAIL: flash $((text + data)) > budget $text_budget" >&2
  status=1
fi
if (( ram > ram_budget )); then
  echo "FAIL: RAM $ram > budget $ram_budget" >&2
  status=1
fi
[[ $status == 0 ]] && echo "OK: within budget"
exit $status
