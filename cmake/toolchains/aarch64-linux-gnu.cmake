# arm64 (ARMv8-A, 64-bit: Raspberry Pi 3/4/5 with a 64-bit OS). Preset cross-arm64; see
# debian-cross.cmake and docs/deployment.md#arm-builds.
set(OUTPOST_CROSS_TRIPLE aarch64-linux-gnu)
set(OUTPOST_CROSS_PROCESSOR aarch64)
set(OUTPOST_CROSS_DEB_ARCH arm64)
set(OUTPOST_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
