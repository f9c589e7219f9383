# Build options. Flags are target-scoped: everything kiln compiles links the interface
# target kiln_build_flags, and nothing here edits CMAKE_<LANG>_FLAGS.
set(KILN_CUDA "AUTO" CACHE STRING "CUDA backend: AUTO (ON when nvcc is found), ON, OFF, SIM")
set_property(CACHE KILN_CUDA PROPERTY STRINGS AUTO ON OFF SIM)
option(KILN_BUILD_TESTS "Build the GoogleTest suites" ON)
option(KILN_BUILD_BENCH "Build the Google Benchmark programs" ON)
option(KILN_BUILD_SAMPLES "Build the sample programs" ON)
set(KILN_SANITIZE "" CACHE STRING "Sanitizers: address, undefined, thread, a comma list, or empty")
set_property(CACHE KILN_SANITIZE PROPERTY STRINGS "" address undefined thread)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

find_program(KILN_CCACHE ccache)
if(KILN_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${KILN_CCACHE})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${KILN_CCACHE})
endif()

add_library(kiln_build_flags INTERFACE)
target_compile_features(kiln_build_flags INTERFACE cxx_std_20)
target_compile_options(kiln_build_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers>)

# KILN_SANITIZE: one sanitizer, or a comma list of compatible ones ("address,undefined").
if(KILN_SANITIZE)
  string(REPLACE "," ";" _kiln_sanitizers "${KILN_SANITIZE}")
  foreach(_s IN LISTS _kiln_sanitizers)
    if(NOT _s MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "KILN_SANITIZE takes address, undefined, thread or a comma list of them, got '${KILN_SANITIZE}'")
    endif()
  endforeach()
  if("thread" IN_LIST _kiln_sanitizers AND "address" IN_LIST _kiln_sanitizers)
    message(FATAL_ERROR "KILN_SANITIZE: thread and address cannot be combined")
  endif()
  set(_kiln_san -fsanitize=${KILN_SANITIZE} -fno-omit-frame-pointer)
  if("undefined" IN_LIST _kiln_sanitizers)
    list(APPEND _kiln_san -fno-sanitize-recover=undefined)
  endif()
  target_compile_options(kiln_build_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_kiln_san}>)
  target_link_options(kiln_build_flags INTERFACE ${_kiln_san})
endif()
