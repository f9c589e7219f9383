# Resolves KILN_CUDA (AUTO|ON|OFF|SIM) into KILN_CUDA_MODE, one of ON, OFF, SIM.
#   ON : nvcc compiles kernels/**/*.cu and core/cuda/*.cu; links cudart (+ vendor libs).
#   OFF: no CUDA toolkit needed; only the cpu device exists.
#   SIM: the same .cu sources are compiled as C++ against kiln's SIMT emulator
#        (core/cuda/sim), so cuda:N devices exist on any machine.
# CMAKE_CUDA_ARCHITECTURES defaults to the release list "80;90" (A100, H100). Use
# -DCMAKE_CUDA_ARCHITECTURES=native for a build for the local GPU only (scripts/gpu-check).
string(TOUPPER "${KILN_CUDA}" KILN_CUDA)
if(NOT KILN_CUDA MATCHES "^(AUTO|ON|OFF|SIM)$")
  message(FATAL_ERROR "KILN_CUDA must be AUTO, ON, OFF or SIM, got '${KILN_CUDA}'")
endif()

set(KILN_CUDA_MODE ${KILN_CUDA})
if(KILN_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(KILN_CUDA_MODE ON)
  else()
    set(KILN_CUDA_MODE OFF)
  endif()
endif()

if(KILN_CUDA_MODE STREQUAL "ON")
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures (release list; 'native' for the local GPU)")
  endif()
  enable_language(CUDA)
  # CMake 3.25's NVIDIA module knows no C++20 flag for nvcc; nvcc 12+ accepts -std=c++20.
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  target_compile_options(kiln_build_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr --extended-lambda -Xcompiler=-Wall>)
endif()
message(STATUS "kiln: KILN_CUDA=${KILN_CUDA} -> ${KILN_CUDA_MODE}")

# kiln_cuda_sources(<target> <files...>): adds .cu files the way the mode needs them.
# ON compiles them with nvcc; SIM compiles them as C++ against the emulator; OFF skips them.
function(kiln_cuda_sources target)
  if(KILN_CUDA_MODE STREQUAL "ON")
    target_sources(${target} PRIVATE ${ARGN})
  elseif(KILN_CUDA_MODE STREQUAL "SIM")
    set_source_files_properties(${ARGN} TARGET_DIRECTORY ${target} PROPERTIES LANGUAGE CXX)
    foreach(f IN LISTS ARGN)
      set_source_files_properties(${f} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "-xc++")
    endforeach()
    target_sources(${target} PRIVATE ${ARGN})
  endif()
endfunction()
