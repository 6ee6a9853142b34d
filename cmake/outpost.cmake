# One place to declare components, tests and fuzzers, so none silently drops out of the build.

set(OUTPOST_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers)

# outpost_library(NAME <target> SOURCES ... [DEPS ...] [PRIVATE_DEPS ...] [FORBID_INCLUDES ...])
# Public headers live in the folder's include/. FORBID_INCLUDES: include paths (prefixes, e.g.
# asio openssl/) that the target's sources, and the headers of its own include/ they pull in,
# must not include; checked at configure time, which editing one of them re-runs (a sans-I/O
# target cannot reach a socket header by accident: system headers are on every include path).
function(outpost_library)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS;FORBID_INCLUDES" ${ARGN})
  if(A_FORBID_INCLUDES)
    _outpost_check_includes(${A_NAME} "${A_SOURCES}" "${A_FORBID_INCLUDES}")
  endif()
  if(A_SOURCES)
    add_library(${A_NAME} STATIC ${A_SOURCES})
    target_include_directories(${A_NAME} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${A_NAME} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
    target_compile_options(${A_NAME} PRIVATE ${OUTPOST_WARNINGS})
  else()
    add_library(${A_NAME} INTERFACE)
    target_include_directories(${A_NAME} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${A_NAME} INTERFACE ${A_DEPS})
  endif()
endfunction()

# outpost_test(NAME <name> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s] [SERIAL [RUNS_EMULATED]])
# Registers a GoogleTest binary with CTest. Label "unit" or "integration". SERIAL: the test
# loads the machine (thousands of connections, floods) and runs alone, never beside another.
# RUNS_EMULATED: a SERIAL test whose bounds were measured to hold under qemu-user too.
function(outpost_test)
  cmake_parse_arguments(A "SERIAL;RUNS_EMULATED" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  _outpost_register_sources(${A_NAME} ${A_SOURCES})
  if(NOT OUTPOST_TESTS)
    return()
  endif()
  add_executable(${A_NAME} ${A_SOURCES})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_options(${A_NAME} PRIVATE ${OUTPOST_WARNINGS})
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 120)
  endif()
  add_test(NAME ${A_NAME} COMMAND ${A_NAME})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "OUTPOST_BINARY_DIR=${CMAKE_BINARY_DIR};OUTPOST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  _outpost_emulator_env(${A_NAME})
  if(A_SERIAL)
    set_tests_properties(${A_NAME} PROPERTIES RUN_SERIAL TRUE)
    # A SERIAL test loads the machine (thousands of connections, floods, kill rounds) within time
    # bounds set for native code; qemu-user runs it many times slower, so a cross build labels it
    # "emulation-slow" and the cross presets leave it out (it still runs in the native build).
    if(CMAKE_CROSSCOMPILING AND NOT A_RUNS_EMULATED)
      set_property(TEST ${A_NAME} APPEND PROPERTY LABELS emulation-slow)
    endif()
  endif()
endfunction()

# outpost_script_test(NAME <name> SCRIPT <file> [LABELS ...] [TIMEOUT s] [CROSS_ONLY])
# Registers a shell test (bash, exits non-zero on failure) with CTest; label "unit" by default,
# timeout 60 s unless given. CROSS_ONLY: a check of a cross build's output that runs on the build
# host (bash, never under the emulator): added only to cross builds, and not labelled host-only.
function(outpost_script_test)
  cmake_parse_arguments(A "CROSS_ONLY" "NAME;SCRIPT;TIMEOUT" "LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 60)
  endif()
  _outpost_register_sources("" ${A_SCRIPT})
  if(NOT OUTPOST_TESTS OR (A_CROSS_ONLY AND NOT CMAKE_CROSSCOMPILING))
    return()
  endif()
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  # Script tests check the scripts and units, not the target's binaries: arch-independent, they
  # run in the native build and a cross build labels them "host-only" (left out by its presets).
  if(CMAKE_CROSSCOMPILING AND NOT A_CROSS_ONLY)
    list(APPEND A_LABELS host-only)
  endif()
  add_test(NAME ${A_NAME} COMMAND bash ${A_SCRIPT})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "OUTPOST_BINARY_DIR=${CMAKE_BINARY_DIR};OUTPOST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  _outpost_emulator_env(${A_NAME})
endfunction()

# Cross builds (cmake/toolchains/): a test runs under CMAKE_CROSSCOMPILING_EMULATOR (qemu-user),
# and the programs it spawns through ChildProcess (outpost-gateway, outpost-cloud) run through
# the same emulator, passed as OUTPOST_TEST_EMULATOR (space-separated). Script tests get it too
# (with OUTPOST_CROSS=1) so one that runs our binaries can prefix them or skip.
function(_outpost_emulator_env test)
  if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
    string(REPLACE ";" " " emulator "${CMAKE_CROSSCOMPILING_EMULATOR}")
    set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT
      "OUTPOST_TEST_EMULATOR=${emulator}" "OUTPOST_CROSS=1")
  endif()
endfunction()

# outpost_browser_test(NAME <name> SCRIPT <file.mjs> [TIMEOUT s])
# Registers a browser test (node's test runner driving headless Chromium through playwright-core
# from web/'s npm packages) with CTest; label "integration", run alone (Chromium is heavy).
function(outpost_browser_test)
  cmake_parse_arguments(A "" "NAME;SCRIPT;TIMEOUT" "" ${ARGN})
  _outpost_register_sources("" ${A_SCRIPT})
  if(NOT OUTPOST_TESTS)
    return()
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  get_filename_component(script "${A_SCRIPT}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  # The browser tests start outpost-gateway from node, which cannot run a target binary without
  # binfmt: a cross build labels them "host-only" (left out by its presets).
  set(labels integration)
  if(CMAKE_CROSSCOMPILING)
    list(APPEND labels host-only)
  endif()
  add_test(NAME ${A_NAME} COMMAND ${OUTPOST_NODE} --test ${script})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${labels}" TIMEOUT ${A_TIMEOUT} RUN_SERIAL TRUE
    ENVIRONMENT "OUTPOST_BINARY_DIR=${CMAKE_BINARY_DIR};OUTPOST_SOURCE_DIR=${CMAKE_SOURCE_DIR};OUTPOST_WEB_NODE_MODULES=${OUTPOST_WEB_NODE_MODULES}")
endfunction()

# Every fuzz target, so scripts can build just those: cmake --build ... --target fuzzers
add_custom_target(fuzzers)

# outpost_fuzzer(NAME <name> SOURCES ... DEPS ... CORPUS <dir>)
# With OUTPOST_FUZZ=ON (clang): a libFuzzer binary, and a short CTest run over the corpus
# (label "fuzz"). Without it: a replay binary that runs every corpus file once (label "unit"),
# so the corpus stays a regression suite in every build.
function(outpost_fuzzer)
  cmake_parse_arguments(A "" "NAME;CORPUS" "SOURCES;DEPS" ${ARGN})
  _outpost_register_sources(${A_NAME} ${A_SOURCES} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
  if(NOT OUTPOST_TESTS)
    return()
  endif()
  add_executable(${A_NAME} ${A_SOURCES})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  target_compile_options(${A_NAME} PRIVATE ${OUTPOST_WARNINGS})
  add_dependencies(fuzzers ${A_NAME})
  if(OUTPOST_FUZZ)
    target_compile_options(${A_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${A_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
    set(run_dir ${CMAKE_CURRENT_BINARY_DIR}/${A_NAME}_corpus)
    add_test(NAME ${A_NAME}_fuzz
      COMMAND ${CMAKE_COMMAND} -E env ${CMAKE_SOURCE_DIR}/tests/fuzz/run_fuzzer.sh
              $<TARGET_FILE:${A_NAME}> ${A_CORPUS} ${run_dir})
    set_tests_properties(${A_NAME}_fuzz PROPERTIES LABELS fuzz TIMEOUT 300)
  else()
    target_sources(${A_NAME} PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    add_test(NAME ${A_NAME}_replay COMMAND ${A_NAME} ${A_CORPUS})
    set_tests_properties(${A_NAME}_replay PROPERTIES LABELS unit TIMEOUT 120)
  endif()
endfunction()

# ---------------------------------------------------------------------------------------------
# Structure checks, run once at the end of the configure step (cmake_language DEFER below).
# 1. Every test and fuzz source in the tree (*_test.cpp, *_fuzz*.cpp, any .cpp under a fuzz/
#    folder, *_test.sh, *_test.mjs) is registered through outpost_test, outpost_fuzzer,
#    outpost_script_test or outpost_browser_test, so none silently drops out of the build.
# 2. Every link edge between the project's own targets (libraries, programs, benchmarks; not the
#    test and fuzz binaries, which link what they test) is listed in the ```edges block of
#    docs/architecture.md.
# Both fail the configure step with the offending file or edge and what to do about it.

# Records the sources (relative to the calling folder) of a test, fuzzer or script test; `target`
# (may be empty) is left out of the target-graph check.
function(_outpost_register_sources target)
  foreach(src ${ARGN})
    get_filename_component(abs "${src}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    set_property(GLOBAL APPEND PROPERTY OUTPOST_REGISTERED_SOURCES "${abs}")
  endforeach()
  if(target)
    set_property(GLOBAL APPEND PROPERTY OUTPOST_TEST_TARGETS ${target})
  endif()
endfunction()

# Fails when a source of `target`, or a header of the calling folder's include/ that one of them
# includes with quotes (followed transitively), includes a path starting with one of `forbidden`.
function(_outpost_check_includes target sources forbidden)
  set(include_dir "${CMAKE_CURRENT_SOURCE_DIR}/include")
  set(queue)
  foreach(src ${sources})
    get_filename_component(abs "${src}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND queue "${abs}")
  endforeach()
  set(seen)
  set(errors)
  while(queue)
    list(POP_FRONT queue file)
    if(file IN_LIST seen OR NOT EXISTS "${file}")
      continue()
    endif()
    list(APPEND seen "${file}")
    file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line ${includes})
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]*)[>\"].*$" "\\1" path "${line}")
      foreach(prefix ${forbidden})
        string(FIND "${path}" "${prefix}" at)
        if(at EQUAL 0)
          file(RELATIVE_PATH rel "${CMAKE_SOURCE_DIR}" "${file}")
          list(APPEND errors "  ${rel} includes <${path}>")
        endif()
      endforeach()
      if(line MATCHES "\"" AND EXISTS "${include_dir}/${path}")
        list(APPEND queue "${include_dir}/${path}")
      endif()
    endforeach()
  endwhile()
  # Editing one of these files re-runs the configure step, so the check holds between configures.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${seen})
  if(errors)
    string(REPLACE ";" "\n" errors "${errors}")
    file(RELATIVE_PATH where "${CMAKE_SOURCE_DIR}" "${CMAKE_CURRENT_LIST_FILE}")
    string(REPLACE ";" ", " forbidden "${forbidden}")
    message(FATAL_ERROR "${target} must not include ${forbidden} (FORBID_INCLUDES in ${where}):\n"
      "${errors}\nMove that code to a target that may use it (e.g. an adapter), or include "
      "only the pure headers.")
  endif()
endfunction()

function(_outpost_collect_targets dir out)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub ${subdirs})
    _outpost_collect_targets("${sub}" sub_targets)
    list(APPEND targets ${sub_targets})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

function(_outpost_check_test_sources)
  get_property(registered GLOBAL PROPERTY OUTPOST_REGISTERED_SOURCES)
  get_property(roots DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY SUBDIRECTORIES)
  set(missing)
  foreach(root ${roots})
    file(GLOB_RECURSE candidates CONFIGURE_DEPENDS "${root}/*.cpp" "${root}/*.sh" "${root}/*.mjs")
    foreach(file ${candidates})
      if(NOT file MATCHES "(_test\\.cpp|_fuzz[^/]*\\.cpp|/fuzz/[^/]*\\.cpp|_test\\.sh|_test\\.mjs)$")
        continue()
      endif()
      if(NOT file IN_LIST registered)
        file(RELATIVE_PATH rel "${CMAKE_SOURCE_DIR}" "${file}")
        list(APPEND missing "  ${rel}")
      endif()
    endforeach()
  endforeach()
  if(missing)
    list(LENGTH missing count)
    string(REPLACE ";" "\n" missing "${missing}")
    message(FATAL_ERROR "${count} test or fuzz source(s) in no target:\n${missing}\n"
      "Register each in its folder's CMakeLists.txt with the helper from cmake/outpost.cmake: "
      "outpost_test(NAME <name> SOURCES ... DEPS ...) for a *_test.cpp, "
      "outpost_fuzzer(NAME <name> SOURCES ... DEPS ... CORPUS <dir>) for a fuzz source, "
      "outpost_script_test(NAME <name> SCRIPT <file>) for a *_test.sh, "
      "outpost_browser_test(NAME <name> SCRIPT <file>) for a *_test.mjs.")
  endif()
endfunction()

# The ```edges block of docs/architecture.md: one "from -> to" per line, # comments.
function(_outpost_check_target_graph)
  set(doc "${CMAKE_SOURCE_DIR}/docs/architecture.md")
  file(READ "${doc}" text)
  string(FIND "${text}" "```edges\n" begin)
  if(begin EQUAL -1)
    message(FATAL_ERROR "docs/architecture.md has no ```edges block (the allowed target edges)")
  endif()
  math(EXPR begin "${begin} + 9")
  string(SUBSTRING "${text}" ${begin} -1 text)
  string(FIND "${text}" "```" end)
  string(SUBSTRING "${text}" 0 ${end} text)
  string(REPLACE ";" "" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(allowed)
  foreach(line ${lines})
    string(REGEX REPLACE "#.*$" "" line "${line}")
    string(STRIP "${line}" line)
    if(line STREQUAL "")
      continue()
    endif()
    if(NOT line MATCHES "^([A-Za-z0-9_.:-]+)[ \t]*->[ \t]*([A-Za-z0-9_.:-]+)$")
      message(FATAL_ERROR "docs/architecture.md, ```edges block: cannot read \"${line}\" "
        "(expected \"<target> -> <target>\")")
    endif()
    list(APPEND allowed "${CMAKE_MATCH_1}->${CMAKE_MATCH_2}")
  endforeach()

  _outpost_collect_targets("${CMAKE_SOURCE_DIR}" targets)
  get_property(test_targets GLOBAL PROPERTY OUTPOST_TEST_TARGETS)
  set(actual)
  set(errors)
  foreach(target ${targets})
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "UTILITY" OR target IN_LIST test_targets)
      continue()
    endif()
    if(type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(deps ${target} INTERFACE_LINK_LIBRARIES)
    else()
      get_target_property(deps ${target} LINK_LIBRARIES)
    endif()
    if(NOT deps)
      continue()
    endif()
    foreach(dep ${deps})
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
      if(NOT dep IN_LIST targets)
        continue()  # third-party or a generator expression
      endif()
      list(APPEND actual "${target}->${dep}")
      if(NOT "${target}->${dep}" IN_LIST allowed)
        get_target_property(dir ${target} SOURCE_DIR)
        file(RELATIVE_PATH dir "${CMAKE_SOURCE_DIR}" "${dir}")
        list(APPEND errors "  ${target} -> ${dep}    (linked in ${dir}/CMakeLists.txt)")
      endif()
    endforeach()
  endforeach()
  if(errors)
    string(REPLACE ";" "\n" errors "${errors}")
    message(FATAL_ERROR "target edges not in the allowed list:\n${errors}\n"
      "If the dependency is intended, add the line \"<from> -> <to>\" under its layer in the "
      "```edges block of docs/architecture.md (and say why in the commit); otherwise remove it "
      "from target_link_libraries / DEPS.")
  endif()
  foreach(edge ${allowed})
    string(REPLACE "->" ";" ends "${edge}")
    list(GET ends 0 from)
    list(GET ends 1 to)
    if(TARGET ${from} AND TARGET ${to} AND NOT from IN_LIST test_targets
       AND NOT edge IN_LIST actual)
      message(WARNING "docs/architecture.md allows ${from} -> ${to}, which nothing links any "
        "more: remove the line from the ```edges block.")
    endif()
  endforeach()
endfunction()

function(_outpost_check_structure)
  _outpost_check_test_sources()
  _outpost_check_target_graph()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _outpost_check_structure)
