# bench_gemm: bf16 GEMM throughput through ops::linear (needs the CUDA backend).
# Included from bench/CMakeLists.txt:  include(${CMAKE_CURRENT_LIST_DIR}/gemm.cmake)
if(LMF_WITH_CUDA)
  add_executable(bench_gemm ${CMAKE_CURRENT_LIST_DIR}/bench_gemm.cc)
  target_compile_options(bench_gemm PRIVATE ${LMF_WARNINGS})
  target_link_libraries(bench_gemm PRIVATE lmforge)
  set_target_properties(bench_gemm PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
endif()
