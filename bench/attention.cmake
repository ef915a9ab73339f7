# bench_attention: ragged attention forward and forward + backward (see the source's header).
# Included by bench/CMakeLists.txt; builds with and without CUDA (cpu timing without).
add_executable(bench_attention ${CMAKE_CURRENT_LIST_DIR}/bench_attention.cc)
target_link_libraries(bench_attention PRIVATE lmforge)
target_compile_options(bench_attention PRIVATE ${LMF_WARNINGS})
set_target_properties(bench_attention PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
