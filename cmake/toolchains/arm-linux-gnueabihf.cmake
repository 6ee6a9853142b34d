# armhf (ARMv7-A with VFPv3-D16, 32-bit: Raspberry Pi 2/3/4 with a 32-bit OS). Debian's armhf
# compiler defaults to ARMv7 (readelf -A: Tag_CPU_arch: v7); ARMv6 (Pi Zero, Pi 1) is not a
# target. qemu emulates a Cortex-A7 (the Pi 2's core). Preset cross-armhf; see debian-cross.cmake.
set(OUTPOST_CROSS_TRIPLE arm-linux-gnueabihf)
set(OUTPOST_CROSS_PROCESSOR armv7l)
set(OUTPOST_CROSS_DEB_ARCH armhf)
set(OUTPOST_CROSS_QEMU qemu-arm -cpu cortex-a7)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
# GCC notes on every std::vector<std::variant<...>> that its parameter passing changed in GCC 7.1
# (-Wpsabi): it matters only when linking with code built by GCC < 7, which nothing here is.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
