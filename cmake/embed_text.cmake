# Embeds a text file in the program as a std::string_view (a C++ raw string literal), at build
# time: cmake -DINPUT=file -DOUTPUT=file.cpp -DNAME=kName -DNAMESPACE=ns -P embed_text.cmake
# The output is rewritten only when it changes (so nothing rebuilds needlessly).
file(READ "${INPUT}" content)
string(FIND "${content}" ")EMBED\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )EMBED\"")
endif()
set(text "// Generated from ${INPUT} by cmake/embed_text.cmake; do not edit.\n")
string(APPEND text "#include <string_view>\n\nnamespace ${NAMESPACE} {\n")
string(APPEND text "extern const std::string_view ${NAME};\n")
string(APPEND text "const std::string_view ${NAME} = R\"EMBED(${content})EMBED\";\n")
string(APPEND text "}  // namespace ${NAMESPACE}\n")
file(WRITE "${OUTPUT}.tmp" "${text}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
