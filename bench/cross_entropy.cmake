# bench_cross_entropy: fused chunked cross-entropy, forward + backward (see the source's header).
# Included by bench/CMakeLists.txt; builds with and without CUDA (cpu timing without).
add_executable(bench_cross_entropy ${CMAKE_CURRENT_LIST_DIR}/bench_cross_entropy.cc)
target_link_libraries(bench_cross_entropy PRIVATE lmforge)
target_compile_options(bench_cross_entropy PRIVATE ${LMF_WARNINGS})
set_target_properties(bench_cross_entropy PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
