#!/usr/bin/env bash
# Installs every build, test and run dependency from Debian 12's packages.
# Idempotent and quick when everything is present: apt is only called for what is missing.
#
# Usage: scripts/install-deps.sh          install what is missing (as root, or with sudo available)
#        scripts/install-deps.sh --check  list what is missing, install nothing; exit 1 if anything is
set -euo pipefail

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  *) echo "install-deps: unknown option $1 (see --help)" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev clang-format clang-tidy
  libasio-dev libboost-dev libssl-dev openssl libsqlite3-dev sqlite3
  libsimdjson-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  mosquitto mosquitto-clients
  gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib
  libsodium-dev libpqxx-dev libpq-dev postgresql postgresql-common libcpp-httplib-dev curl
  procps iproute2 jq wrk systemd systemd-container
  chromium fonts-dejavu-core
  dpkg-dev lintian mmdebstrap
  g++-aarch64-linux-gnu binutils-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user
)
# The dashboard (web/) builds with node and npm (npm ci at build time); its browser tests drive
# Debian's chromium. Debian's nodejs and npm, unless a node with its npm is already installed
# (NodeSource's nodejs bundles npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

# One dpkg-query for all: a package is missing unless reported "install ok installed".
# dpkg-query exits 1 when it knows none of a name (a bare machine), which is not an error here.
installed=$( (dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true) \
  | awk '$2 == "install" && $3 == "ok" && $4 == "installed" { print $1 }' | sed 's/:.*//')
missing=()
for p in "${packages[@]}"; do
  grep -qx "$p" <<<"$installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: missing ${#missing[@]} of ${#packages[@]} packages: ${missing[*]}"
if [ "$check" = 1 ]; then exit 1; fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root (sudo is not installed)" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The mosquitto package starts a system broker on :1883; our scripts start their own on free
# ports, so leave the system one as the user configured it.
echo "install-deps: done"
