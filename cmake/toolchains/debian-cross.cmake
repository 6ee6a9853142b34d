# Shared part of the Debian cross toolchains (aarch64-linux-gnu.cmake, arm-linux-gnueabihf.cmake):
# Debian 12's cross compilers against a sysroot made by scripts/make-sysroot.sh, and qemu-user
# (`qemu-<cpu> -L <sysroot>`, never binfmt) to run what the build and the tests execute.
# The including file sets OUTPOST_CROSS_TRIPLE, OUTPOST_CROSS_PROCESSOR, OUTPOST_CROSS_DEB_ARCH
# (the Debian architecture: the packages' Architecture and dpkg-shlibdeps' DEB_HOST_ARCH,
# packaging/CMakeLists.txt) and OUTPOST_CROSS_QEMU.
# CMAKE_SYSROOT comes from the preset (or -DCMAKE_SYSROOT=...); it is required.
if(NOT CMAKE_SYSROOT)
  message(FATAL_ERROR "cross build: set CMAKE_SYSROOT to a sysroot made by "
    "scripts/make-sysroot.sh (the cross-arm64 / cross-armhf presets do)")
endif()
if(NOT EXISTS "${CMAKE_SYSROOT}/.outpost-sysroot")
  message(FATAL_ERROR "cross build: ${CMAKE_SYSROOT} is not a sysroot made by "
    "scripts/make-sysroot.sh; make it first: scripts/make-sysroot.sh <arm64|armhf>")
endif()

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${OUTPOST_CROSS_PROCESSOR})
set(CMAKE_LIBRARY_ARCHITECTURE ${OUTPOST_CROSS_TRIPLE})
set(CMAKE_C_COMPILER ${OUTPOST_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${OUTPOST_CROSS_TRIPLE}-g++)

# Headers, libraries and CMake packages only from the sysroot; programs (node, npm, bash,
# mosquitto for the tests) from the build host.
set(CMAKE_FIND_ROOT_PATH ${CMAKE_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads only the sysroot's .pc files and prefixes their paths with the sysroot.
set(ENV{PKG_CONFIG_DIR} "")
set(ENV{PKG_CONFIG_LIBDIR}
  "${CMAKE_SYSROOT}/usr/lib/${OUTPOST_CROSS_TRIPLE}/pkgconfig:${CMAKE_SYSROOT}/usr/share/pkgconfig:${CMAKE_SYSROOT}/usr/lib/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${CMAKE_SYSROOT}")

set(CMAKE_CROSSCOMPILING_EMULATOR ${OUTPOST_CROSS_QEMU} -L ${CMAKE_SYSROOT})
