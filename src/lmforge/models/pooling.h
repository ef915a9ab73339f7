// Sequence pooling for classification heads over an unpadded stream (DESIGN.md §5 heads):
//   cls   the first real token of each sequence (BERT/RoBERTa/ModernBERT "cls")
//   mean  the mean over the sequence's real tokens (ModernBERT "mean"; HF sums h*m / sum m)
//   last  the last real token (causal models, HF *ForSequenceClassification of decoders; the
//         fine-tuning seed's Mamba pooling)
// Implemented as one small GEMM with a [S, N] pooling matrix (S sequences, N tokens): exact,
// differentiable through ops::matmul, and cheap next to the encoder (S*N*H flops).
#pragma once

#include <string>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf {

enum class Pooling { cls, mean, last };

// "cls" | "mean" | "last"; throws lmf::Error naming `field` otherwise.
Pooling parse_pooling(const std::string& name, const std::string& field);
const char* pooling_name(Pooling p);

// h [N, H] (stream order), cu_seqlens [S+1] host -> [S, H] in h's dtype and device. Every
// sequence must be non-empty (lmf::Error "[pooling] sequence s is empty" otherwise).
Tensor pool_sequences(const Tensor& h, const std::vector<int32_t>& cu_seqlens, Pooling pooling);

}  // namespace lmf
