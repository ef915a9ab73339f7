#!/usr/bin/env bash
# The main job: pre-train a tiny Mamba on the shipped English + French text with the
# Mambaoutai recipe scaled down (WSD schedule, positional loss weighting, a decay phase that
# adds data), evaluate perplexity and top-k accuracy, and generate a sample; then fine-tune that
# Mamba and a tiny BERT on the shipped SST-2 sentiment data and print them side by side.
# CPU by default (a few minutes on a laptop); uses the GPU when one is present.
# Leaves runs/tiny-mamba/ with config.resolved.toml, metrics.jsonl and HF-format checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
LMF=build/bin/lmforge
TOK=data/tokenizers/enfr-bpe-4k/tokenizer.json
RUN=${LMF_DEMO_RUN:-runs/tiny-mamba}

echo "== 1. tokenize the shipped text into shards"
mkdir -p runs/data
[ -f runs/data/en.idx ] || $LMF tokenize --tokenizer $TOK data/text/tiny_shakespeare.txt -o runs/data/en --holdout 0.02
[ -f runs/data/fr.idx ] || $LMF tokenize --tokenizer $TOK data/text/tinymoliere.txt --split line -o runs/data/fr --holdout 0.02
[ -f runs/data/frwiki.idx ] || $LMF tokenize --tokenizer $TOK data/text/wiki-fr-extract.txt --split line -o runs/data/frwiki

echo "== 2. pre-train (configs/tiny-mamba.toml)"
rm -rf "$RUN"
$LMF pretrain --config configs/tiny-mamba.toml --set run.dir="$RUN" "$@"
CKPT=$(ls -d "$RUN"/checkpoints/step_* | tail -n 1)

echo "== 3. evaluate $CKPT on the held-out text"
$LMF eval --model "$CKPT" --data runs/data/en-val runs/data/fr-val --seq-len 128 --buckets 0,10,32,64

echo "== 4. generate"
$LMF generate --model "$CKPT" --tokenizer $TOK --prompt "ROMEO:" --max-new-tokens 60 --temperature 0.8 --top-k 40 --seed 1
$LMF generate --model "$CKPT" --tokenizer $TOK --prompt "MONSIEUR JOURDAIN." --max-new-tokens 60 --temperature 0.8 --top-k 40 --seed 2

echo "== 5. fine-tune on SST-2: the pre-trained tiny Mamba (last-token pooling) and a tiny BERT"
FT_MAMBA=${RUN}-sst2
FT_BERT=runs/tiny-bert-sst2
rm -rf "$FT_MAMBA" "$FT_BERT"
$LMF finetune --task seq-cls --config configs/finetune-sst2-tiny-mamba.toml --model "$CKPT" \
  --set 'model.config=""' --out "$FT_MAMBA"
$LMF finetune --task seq-cls --config configs/finetune-sst2-tiny-bert.toml --out "$FT_BERT"
echo "== 6. side by side (SST-2 dev, best checkpoint of each run)"
$LMF compare "$FT_MAMBA" "$FT_BERT"
echo "try: echo 'a charming and often affecting journey' | $LMF predict --model $FT_MAMBA/best"
echo
echo "run folders: $RUN (pre-training: config.resolved.toml, metrics.jsonl, HF checkpoints), $FT_MAMBA, $FT_BERT"
