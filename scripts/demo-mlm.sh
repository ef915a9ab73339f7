#!/usr/bin/env bash
# Masked-LM pre-training demo: a tiny multilingual BERT (mBERT's cased WordPiece vocabulary) on
# the shipped English + French text and the small multilingual sample, with the mmBERT recipe
# scaled down (configs/tiny-mlm.toml): three phases with an inverse mask schedule
# (30 % -> 20 % -> 5 %), annealed language sampling (tau 0.7 -> 0.5 -> 0.3) with languages added
# per phase, WSD with a 1-sqrt decay. CPU by default (a few minutes); the GPU when present.
# Leaves runs/tiny-mlm/ with config.resolved.toml, metrics.jsonl and HF-format checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
LMF=build/bin/lmforge
TOK=data/tokenizers/bert-base-multilingual-cased/tokenizer.json
RUN=${LMF_DEMO_RUN:-runs/tiny-mlm}
D=runs/mlm-data

echo "== 1. tokenize the shipped text into shards (mBERT WordPiece)"
mkdir -p $D
[ -f $D/en.idx ] || $LMF tokenize --tokenizer $TOK data/text/tiny_shakespeare.txt -o $D/en --holdout 0.02
[ -f $D/fr.idx ] || $LMF tokenize --tokenizer $TOK data/text/tinymoliere.txt --split line -o $D/fr --holdout 0.02
[ -f $D/frwiki.idx ] || $LMF tokenize --tokenizer $TOK data/text/wiki-fr-extract.txt --split line -o $D/frwiki
[ -f $D/multi.idx ] || $LMF tokenize --tokenizer $TOK data/text/multilingual.txt --split line -o $D/multi

echo "== 2. pre-train (configs/tiny-mlm.toml)"
rm -rf "$RUN"
$LMF pretrain --config configs/tiny-mlm.toml --set run.dir="$RUN" "$@"
echo
echo "run folder: $RUN (config.resolved.toml, metrics.jsonl, checkpoints/ in Hugging Face format)"
