# CMake's reader of build.txt (the op library's sources and common flags):
# include() it to get, for each `name = words` line of build.txt, the list
# CONDCOMP_OPS_<NAME> (name upper-cased), with the files of sources,
# delegate_sources, driver_sources and headers as absolute paths:
#
#   CONDCOMP_OPS_SOURCES, CONDCOMP_OPS_DELEGATE_SOURCES, CONDCOMP_OPS_HEADERS,
#   CONDCOMP_OPS_DRIVER_SOURCES (the test driver, C++17),
#   CONDCOMP_OPS_CFLAGS, CONDCOMP_OPS_LIBRARY_CFLAGS
#
# Editing build.txt re-runs the configure step.
set(_cc_ops_build "${CMAKE_CURRENT_LIST_DIR}/build.txt")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_cc_ops_build}")
file(STRINGS "${_cc_ops_build}" _cc_ops_lines REGEX "^[a-z_]+ *=")
foreach(_cc_ops_line IN LISTS _cc_ops_lines)
  string(REGEX REPLACE "^([a-z_]+) *=.*$" "\\1" _cc_ops_name "${_cc_ops_line}")
  string(REGEX REPLACE "^[a-z_]+ *= *" "" _cc_ops_words "${_cc_ops_line}")
  separate_arguments(_cc_ops_words UNIX_COMMAND "${_cc_ops_words}")
  string(TOUPPER "${_cc_ops_name}" _cc_ops_name)
  set(CONDCOMP_OPS_${_cc_ops_name} ${_cc_ops_words})
endforeach()
foreach(_cc_ops_name SOURCES DELEGATE_SOURCES DRIVER_SOURCES HEADERS)
  list(TRANSFORM CONDCOMP_OPS_${_cc_ops_name} PREPEND "${CMAKE_CURRENT_LIST_DIR}/")
endforeach()
