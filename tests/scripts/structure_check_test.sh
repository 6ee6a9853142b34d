#!/usr/bin/env bash
# The configure step enforces the layout (cmake/outpost.cmake, docs/architecture.md): a test or
# fuzz source in no target, a link edge missing from the allowed-edges list, and an Asio/OpenSSL
# include in a sans-I/O target each fail it, with a message naming the file or edge and what to
# do. Runs the real configure step on a copy of the source tree, changed one way at a time.
set -uo pipefail
src=${OUTPOST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

tree=$tmp/src
mkdir -p "$tree"
# The sources only: no build directories, no git metadata.
tar -C "$src" --exclude=./build --exclude=./.git -cf - . | tar -C "$tree" -xf -
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
configure() {  # prints the output; exit status of cmake
  timeout 60 cmake -S "$tree" -B "$tmp/build" "${generator[@]}" -DOUTPOST_BENCH=ON 2>&1
}
# CMake wraps its messages: compare with runs of spaces and newlines folded to one space.
fold() { tr '\n' ' ' | tr -s ' '; }
# expect_failure <name> <text>...: configure fails and its output contains every text.
expect_failure() {
  local name=$1; shift
  local out rc p
  out=$(configure); rc=$?
  if [ "$rc" -eq 0 ]; then fail "$name" "configure succeeded; output: $(tail -5 <<<"$out")"; return; fi
  out=$(fold <<<"$out")
  for p in "$@"; do
    p=$(printf '%s' "$p" | fold)
    if ! grep -qF -- "$p" <<<"$out"; then fail "$name" "no \"$p\" in: $out"; return; fi
  done
  pass "$name"
}
expect_success() {
  local out rc
  out=$(configure); rc=$?
  if [ "$rc" -eq 0 ]; then pass "$1"; else fail "$1" "rc=$rc, output: $out"; fi
}

# the_tree_as_it_is_configures: the baseline for every case below.
expect_success the_tree_as_it_is_configures

# test_source_in_no_target_fails_configure
echo 'int main() { return 0; }' > "$tree/libs/base/src/orphan_test.cpp"
expect_failure test_source_in_no_target_fails_configure \
  "libs/base/src/orphan_test.cpp" "outpost_test(NAME"
rm "$tree/libs/base/src/orphan_test.cpp"

# fuzz_source_in_no_target_fails_configure: named *_fuzz*.cpp, or anything in a fuzz/ folder.
mkdir -p "$tree/libs/base/fuzz"
echo 'int main() { return 0; }' > "$tree/libs/base/fuzz/clock_fuzz.cpp"
echo 'int main() { return 0; }' > "$tree/libs/base/fuzz/status_fuzzer.cpp"
expect_failure fuzz_source_in_no_target_fails_configure \
  "2 test or fuzz source(s) in no target" "libs/base/fuzz/clock_fuzz.cpp" \
  "libs/base/fuzz/status_fuzzer.cpp" "outpost_fuzzer(NAME"
rm -r "$tree/libs/base/fuzz"

# edge_missing_from_architecture_md_fails_configure, then passes once the line is added.
cp "$tree/libs/base/CMakeLists.txt" "$tmp/base.cmake"
cp "$tree/docs/architecture.md" "$tmp/architecture.md"
echo 'target_link_libraries(outpost_base PRIVATE outpost_sqlite)' >> "$tree/libs/base/CMakeLists.txt"
expect_failure edge_missing_from_architecture_md_fails_configure \
  "outpost_base -> outpost_sqlite    (linked in libs/base/CMakeLists.txt)" \
  "docs/architecture.md"
sed -i 's/^```edges$/```edges\noutpost_base -> outpost_sqlite/' "$tree/docs/architecture.md"
expect_success edge_listed_in_architecture_md_configures
cp "$tmp/base.cmake" "$tree/libs/base/CMakeLists.txt"
cp "$tmp/architecture.md" "$tree/docs/architecture.md"

# unreadable_edges_line_fails_configure
sed -i 's/^```edges$/```edges\noutpost_base depends on outpost_sqlite/' "$tree/docs/architecture.md"
expect_failure unreadable_edges_line_fails_configure \
  'cannot read "outpost_base depends on outpost_sqlite"'
cp "$tmp/architecture.md" "$tree/docs/architecture.md"

# asio_include_in_sans_io_mqtt_fails_configure: in a source, and in a header a source pulls in.
cp "$tree/libs/mqtt/src/codec.cpp" "$tmp/codec.cpp"
sed -i '1i #include <asio.hpp>' "$tree/libs/mqtt/src/codec.cpp"
expect_failure asio_include_in_sans_io_mqtt_fails_configure \
  "outpost_mqtt must not include" "libs/mqtt/src/codec.cpp includes <asio.hpp>"
cp "$tmp/codec.cpp" "$tree/libs/mqtt/src/codec.cpp"
cp "$tree/libs/mqtt/include/outpost/mqtt/wire.h" "$tmp/wire.h"
sed -i 's|^#include <cstddef>|#include <openssl/ssl.h>\n#include <cstddef>|' \
  "$tree/libs/mqtt/include/outpost/mqtt/wire.h"
expect_failure openssl_include_in_sans_io_mqtt_header_fails_configure \
  "libs/mqtt/include/outpost/mqtt/wire.h includes <openssl/ssl.h>"
cp "$tmp/wire.h" "$tree/libs/mqtt/include/outpost/mqtt/wire.h"

# the_restored_tree_configures: every change above was undone.
expect_success the_restored_tree_configures

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
