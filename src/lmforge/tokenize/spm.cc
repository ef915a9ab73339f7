// SentencePiece .model files, run by libsentencepiece (Debian libsentencepiece-dev): the ids are
// those of the python `sentencepiece` package (SentencePieceProcessor.encode), with no id offset.
//
// XLM-R note: HF's slow XLMRobertaTokenizer maps spm id i to i + 1 (fairseq_offset) except for
// its own <s> <pad> </s> <unk> = 0..3 and <mask> = last; that is a property of the XLM-R
// checkpoint, not of the .model file, so lmforge does not apply it here. Use the converted
// tokenizer.json (XLMRobertaConverter layout, Unigram with the fairseq ids) for XLM-R models.
#include <sentencepiece_processor.h>

#include <filesystem>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/decoder.h"
#include "lmforge/tokenize/model.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/tokenize/tokenizer_impl.h"

namespace lmf {

namespace {

using Processor = sentencepiece::SentencePieceProcessor;

// The whole input is one "word": spm normalizes, splits and encodes it itself, and reports each
// piece's byte range in the input.
class SpmModel final : public tok::Model {
 public:
  SpmModel(std::shared_ptr<const Processor> sp, std::string path) : sp_(std::move(sp)), path_(std::move(path)) {}
  const char* type() const override { return "SentencePiece"; }

  void tokenize(std::string_view word, std::vector<tok::Token>& out) const override {
    sentencepiece::ImmutableSentencePieceText spt;
    auto status = sp_->Encode(word, spt.mutable_proto());
    if (!status.ok()) fail(path_, ": sentencepiece encode failed: ", status.message());
    for (size_t i = 0; i < spt.pieces_size(); i++) {
      auto p = spt.pieces(static_cast<int>(i));
      // piece() is the vocab piece, or the surface text for an unknown piece.
      out.push_back(tok::Token{static_cast<int32_t>(p.id()), p.begin(), p.end(), p.piece()});
    }
  }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    int id = sp_->PieceToId(token);  // the unk id for unknown pieces
    if (id < 0 || sp_->IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || id >= sp_->GetPieceSize()) return nullptr;
    return &sp_->IdToPiece(id);
  }
  size_t vocab_size() const override { return static_cast<size_t>(sp_->GetPieceSize()); }
  int32_t max_id() const override { return sp_->GetPieceSize() - 1; }
  void fingerprint(tok::Fnv1a64& h) const override {
    h.add_string("SentencePiece");
    h.add_string(sp_->serialized_model_proto());
  }

 private:
  std::shared_ptr<const Processor> sp_;
  std::string path_;
};

// spm's own detokenizer (SentencePieceProcessor::DecodePieces): control pieces vanish, byte
// pieces are joined, "▁" becomes a space and the leading one is dropped.
class SpmDecoder final : public tok::Decoder {
 public:
  explicit SpmDecoder(std::shared_ptr<const Processor> sp) : sp_(std::move(sp)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    return {sp_->DecodePieces(tokens)};
  }

 private:
  std::shared_ptr<const Processor> sp_;
};

}  // namespace

Tokenizer Tokenizer::from_sentencepiece_file(const std::string& path) {
  if (!std::filesystem::exists(path)) fail(path, ": cannot open file");
  auto sp = std::make_shared<Processor>();
  auto status = sp->Load(path);
  if (!status.ok()) {
    std::string msg = status.message();
    if (msg.find("ParseFromArray") != std::string::npos) msg = "the ModelProto does not parse";
    for (char& c : msg)
      if (c == '\n' || c == '\r') c = ' ';
    fail(path, ": model: not a valid SentencePiece model (", msg, ")");
  }
  if (sp->GetPieceSize() <= 0) fail(path, ": model.pieces: the model has no pieces");
  auto m = std::make_unique<Impl>();
  m->source = path;
  m->model = std::make_unique<SpmModel>(sp, path);
  m->decoder = std::make_unique<SpmDecoder>(sp);
  auto role = [&](int id) -> std::optional<int32_t> {
    if (id < 0 || id >= sp->GetPieceSize()) return std::nullopt;
    return id;
  };
  m->bos = role(sp->bos_id());
  m->eos = role(sp->eos_id());
  m->pad = role(sp->pad_id());
  tok::Fnv1a64 h;
  h.add_string("lmforge-tokenizer-fingerprint-v1");
  m->model->fingerprint(h);
  m->fingerprint = h.hash;
  return Tokenizer(std::move(m));
}

}  // namespace lmf
