// Extra controls of the CUDA caching allocator (backend/cuda/device_memory.cc) beyond the
// core/device_memory.h seam. Only backend/cuda, CUDA tests and benches include this.
#pragma once

namespace lmf::cuda {

// Returns every cached, unused block of `device` to the driver (waits for the device first).
// memory_stats().reserved_bytes drops to current_bytes afterwards.
void empty_cache(int device);

}  // namespace lmf::cuda
