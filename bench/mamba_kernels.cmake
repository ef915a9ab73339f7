# bench_mamba_kernels: selective scan / causal conv1d bandwidth at the Mamba-130m and 1.4B shapes
# (needs the CUDA backend). Included from bench/CMakeLists.txt:
#   include(${CMAKE_CURRENT_LIST_DIR}/mamba_kernels.cmake)
if(LMF_WITH_CUDA)
  add_executable(bench_mamba_kernels ${CMAKE_CURRENT_LIST_DIR}/bench_mamba_kernels.cc)
  target_compile_options(bench_mamba_kernels PRIVATE ${LMF_WARNINGS})
  target_link_libraries(bench_mamba_kernels PRIVATE lmforge)
  set_target_properties(bench_mamba_kernels PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
endif()
