// lmf::Tokenizer: a Hugging Face `tokenizers`-compatible tokenizer loaded from tokenizer.json
// (or a SentencePiece .model, or a BERT vocab.txt).
//
// encode(), encode_pair() and decode() reproduce `tokenizers` (Rust, 0.2x) exactly, offsets
// included; the pipeline order is the one in PARITY.md 6.0:
//   added tokens (raw) -> normalizer per piece -> added tokens (normalized) -> pre-tokenizer per
//   piece -> model per word -> truncation -> post-processor.
// Models: BPE, WordPiece, Unigram (and SentencePiece .model files through libsentencepiece).
// See normalizer.h, pre_tokenizer.h, post_processor.h and decoder.h for the supported stage
// types; anything else is refused at load time with an lmf::Error naming the file and the field.
// truncation/padding in tokenizer.json are ignored (EncodeOptions says how to truncate; lmforge
// pads batches itself). docs/tokenizers.md has the details and the tested parity.
//
// Thread safety: a loaded Tokenizer is immutable; encode/decode may run concurrently from any
// number of threads (the BPE word cache is internally synchronized).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmf {

// The full result of encoding one sequence or a pair (HF `tokenizers.Encoding`), one entry per
// token in every vector.
struct Encoding {
  std::vector<int32_t> ids;
  // 0 for the first sequence, 1 for the second, as the post-processor sets them (RoBERTa and
  // XLM-R give 0 everywhere; BERT gives 1 to the pair's second sequence and its [SEP]).
  std::vector<int32_t> type_ids;
  // 1 for the tokens the post-processor added ([CLS], [SEP], <s>, ...), 0 for tokens of the
  // text, including added/special tokens typed in the text (as HF).
  std::vector<uint8_t> special_tokens_mask;
  // [start, end) BYTE offsets of each token in its own input string (the first or the second);
  // (0, 0) for the post-processor's special tokens. HF Python (`tokenizer(...)`,
  // `Encoding.offsets`) reports CHARACTER (code point) offsets instead; they are equal on ASCII
  // text. Convert with the byte index of each code point when you need Python's numbers.
  std::vector<std::pair<size_t, size_t>> offsets;
  // The token strings (vocab form, e.g. "##ing", "▁the", "Ġthe"; an added token found in the
  // text is the matched text).
  std::vector<std::string> tokens;
  // Index of the pre-token ("word") each token came from within its sequence, -1 for the
  // post-processor's special tokens (HF `word_ids()`).
  std::vector<int32_t> word_ids;
  // 0 / 1: which input the token came from, -1 for the post-processor's special tokens (HF
  // `sequence_ids()`; use it rather than type_ids to find the second sequence of RoBERTa/XLM-R).
  std::vector<int32_t> sequence_ids;

  size_t size() const { return ids.size(); }
};

// Which sequence loses tokens when a (pair) encoding is longer than max_length (HF
// `TruncationStrategy`; `none` = never truncate).
enum class Truncation { longest_first, only_first, only_second, none };

struct EncodeOptions {
  bool add_special_tokens = true;
  // Maximum number of tokens of the result, special tokens included; 0 = no limit.
  size_t max_length = 0;
  Truncation truncation = Truncation::longest_first;
};

class Tokenizer {
 public:
  // Loads a tokenizer.json, or by extension a SentencePiece ".model" (from_sentencepiece_file)
  // or a BERT "vocab.txt" (from_wordpiece_vocab, lowercase = tokenizer_config.json's
  // do_lower_case beside it, true when absent as in transformers). eos/bos/pad ids come from tokenizer_config.json or
  // special_tokens_map.json beside it when present, else from well-known special tokens
  // ("<|endoftext|>", "</s>", "<s>", "<pad>", ...). Throws lmf::Error
  // "<path>: <field>: <problem>" for unreadable, malformed or unsupported input, e.g.
  // "x/tokenizer.json: model.type: 'WordPiece' is not supported yet (supported: BPE)".
  static Tokenizer from_file(const std::string& path);
  // A SentencePiece model file (also what from_file does for a path ending in ".model"):
  // libsentencepiece runs it, so ids, pieces and byte offsets are those of the python
  // `sentencepiece` package (no BOS/EOS added, no fairseq id offset; see spm.cc). Control
  // pieces are dropped by decode(). Throws lmf::Error naming the file when it is missing or not
  // a valid model.
  static Tokenizer from_sentencepiece_file(const std::string& path);
  // Same, from tokenizer.json text; `source` names it in error messages. No side files are read.
  static Tokenizer from_json_string(std::string_view json_text, const std::string& source = "tokenizer.json");
  // A GPT-2 style pair: vocab.json ({token: id}) + merges.txt ("#version" header, "a b" lines).
  // Builds what the hub gpt2 tokenizer.json holds: byte-level BPE, no normalizer, ByteLevel
  // pre-tokenizer without prefix space, ByteLevel decoder, "<|endoftext|>" as a special added
  // token when it is in the vocab (and eos/bos then). Throws lmf::Error naming the file.
  static Tokenizer from_gpt2_files(const std::string& vocab_json, const std::string& merges_txt);

  // A BERT vocab.txt (one token per line, id = line number): builds what transformers'
  // BertTokenizerFast(vocab_file, do_lower_case=lowercase) holds: BertNormalizer (clean text,
  // CJK spacing, strip_accents following lowercase), BertPreTokenizer, WordPiece ("[UNK]", "##",
  // 100 chars), "[CLS] $A [SEP]" / "[CLS] $A [SEP] $B:1 [SEP]:1", WordPiece decoder, and
  // [PAD] [UNK] [CLS] [SEP] [MASK] as special added tokens. Throws lmf::Error naming the file
  // when it cannot be read or lacks [CLS], [SEP] or [UNK].
  static Tokenizer from_wordpiece_vocab(const std::string& vocab_txt, bool lowercase);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text`, which must be valid UTF-8 (else lmf::Error with the byte offset).
  // add_special_tokens applies the post-processor's special tokens (e.g. BOS).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // HF `Tokenizer.encode(first, second)` with truncation (direction right, stride 0) enabled
  // when options.max_length > 0 and options.truncation != none: each sequence is encoded alone
  // (type id 0 / 1), then truncated to max_length minus the post-processor's added-token count
  // (for a pair when there is one; only when add_special_tokens), then the post-processor adds
  // the special tokens. longest_first cuts the longer sequence first (equal split when both are
  // long); only_first / only_second cut one sequence and throw lmf::Error when it is too short
  // to reach max_length or (only_second) when there is no second sequence. max_length smaller
  // than the added-token count throws lmf::Error. Inputs must be valid UTF-8 (else lmf::Error
  // with the byte offset); a pair with a tokenizer whose template has no pair form throws.
  Encoding encode_pair(std::string_view first, std::optional<std::string_view> second,
                       const EncodeOptions& options = {}) const;
  // encode_pair(text, nullopt, options).
  Encoding encode_full(std::string_view text, const EncodeOptions& options = {}) const;

  // Text of `ids`. Ids with no token are skipped (as HF does); a negative id throws lmf::Error.
  // skip_special_tokens drops added tokens marked special.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // Largest id of the model vocab and the added tokens, plus one.
  int32_t vocab_size() const;
  // Added tokens first, then the model vocab (HF `token_to_id`).
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of `id` (an added token's normalized form when it has one), if any.
  std::optional<std::string> id_to_token(int32_t id) const;
  // Whether `id` is an added token marked special.
  bool is_special(int32_t id) const;

  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> pad_id() const;
  // The mask token of masked-LM models: tokenizer_config.json's mask_token, else a special
  // "[MASK]" or "<mask>" added token.
  std::optional<int32_t> mask_id() const;
  // Overrides; an id outside [0, vocab_size()) throws lmf::Error.
  void set_eos_id(std::optional<int32_t> id);
  void set_bos_id(std::optional<int32_t> id);
  void set_pad_id(std::optional<int32_t> id);

  // 64-bit FNV-1a over everything that determines encode(): model type, options, vocab (by id),
  // merges (by rank), added tokens, and the normalizer / pre-tokenizer / post-processor
  // configuration. Equal fingerprints mean equal ids for every input; shards store it so a
  // mismatched tokenizer is refused. The decoder does not enter it.
  uint64_t fingerprint() const;
  // fingerprint() as 16 lowercase hex digits.
  std::string fingerprint_hex() const;

  // "BPE", "WordPiece", "Unigram" or "SentencePiece".
  std::string model_type() const;
  // Ids the post-processor adds to one sequence (or a pair) when add_special_tokens (e.g. 1 for
  // a BOS; BERT: 2 single / 3 pair; RoBERTa, XLM-R: 2 / 4).
  size_t num_special_tokens_added(bool is_pair = false) const;
  // Where the tokenizer came from (file path or source name).
  const std::string& source() const;

  struct Impl;  // defined in tokenizer_impl.h; public so the loader in tokenizer_json.cc can build one

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  // encode_pair; ids_only leaves offsets (0, 0) and tokens empty (for encode()).
  Encoding encode_impl(std::string_view first, std::optional<std::string_view> second,
                       const EncodeOptions& options, bool ids_only) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmf
