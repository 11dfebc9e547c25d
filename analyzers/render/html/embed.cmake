# Writes a C++ source that defines `const char NAME[]` (in
# reqcost::analyzers) holding the bytes of INPUT and a terminating NUL:
#   cmake -DINPUT=report.js -DOUTPUT=report_js.cc -DNAME=kHtmlJs -P embed.cmake
# A byte array rather than a raw string literal: any file content is safe.
foreach(var INPUT OUTPUT NAME)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed.cmake: -D${var}=... is missing")
  endif()
endforeach()
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Sixteen bytes a line keeps the generated file readable (CMake's regex has
# no {16}: the pattern is spelled out).
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line)
string(REGEX REPLACE "(${line})" "\\1\n  " bytes "${bytes}")
get_filename_component(input_name "${INPUT}" NAME)
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${input_name} by embed.cmake: do not edit.\n"
  "#include \"analyzers/render/html_assets.h\"\n\n"
  "namespace reqcost::analyzers {\n\n"
  "extern const char ${NAME}[] = {\n  ${bytes}0x00};\n\n"
  "}  // namespace reqcost::analyzers\n")
# Replace only when changed, so that an unchanged asset rebuilds nothing.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
