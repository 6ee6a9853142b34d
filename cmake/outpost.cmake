# One place to declare components, tests and fuzzers, so none silently drops out of the build.

set(OUTPOST_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers)

# outpost_library(NAME <target> SOURCES ... [DEPS ...] [PRIVATE_DEPS ...])
# Public headers live in the folder's include/.
function(outpost_library)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
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

# outpost_test(NAME <name> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s] [SERIAL])
# Registers a GoogleTest binary with CTest. Label "unit" or "integration". SERIAL: the test
# loads the machine (thousands of connections, floods) and runs alone, never beside another.
function(outpost_test)
  cmake_parse_arguments(A "SERIAL" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
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
  if(A_SERIAL)
    set_tests_properties(${A_NAME} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# outpost_script_test(NAME <name> SCRIPT <file> [LABELS ...])
# Registers a shell test (bash, exits non-zero on failure) with CTest; label "unit" by default.
function(outpost_script_test)
  cmake_parse_arguments(A "" "NAME;SCRIPT" "LABELS" ${ARGN})
  if(NOT OUTPOST_TESTS)
    return()
  endif()
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  add_test(NAME ${A_NAME} COMMAND bash ${A_SCRIPT})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT 60
    ENVIRONMENT "OUTPOST_BINARY_DIR=${CMAKE_BINARY_DIR};OUTPOST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# Every fuzz target, so scripts can build just those: cmake --build ... --target fuzzers
add_custom_target(fuzzers)

# outpost_fuzzer(NAME <name> SOURCES ... DEPS ... CORPUS <dir>)
# With OUTPOST_FUZZ=ON (clang): a libFuzzer binary, and a short CTest run over the corpus
# (label "fuzz"). Without it: a replay binary that runs every corpus file once (label "unit"),
# so the corpus stays a regression suite in every build.
function(outpost_fuzzer)
  cmake_parse_arguments(A "" "NAME;CORPUS" "SOURCES;DEPS" ${ARGN})
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
