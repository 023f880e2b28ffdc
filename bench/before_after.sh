#!/usr/bin/env bash
# The before/after run behind bench/RESULTS.md "Issue 13": the Debian FAQ HTML (EN + ZH) as a customer's
# documents, the offline 0.5B as the base, SFT data with the defaults, a LoRA run of STEPS steps, merged,
# exported to GGUF q8_0 for both models, served by llama.cpp, and `onboard eval` on the held-out split.
#
#   bench/before_after.sh [STAGE ...]      # stages: docs data train merge export serve eval stop; none = all
#   bench/before_after.sh dpo              # then DPO on top of the SFT run: pairs of the questions to decline
#                                          # against the SFT model's own answers, trained, merged, exported,
#                                          # served and evaluated (stages dpo-data dpo-train dpo-merge
#                                          # dpo-export dpo-serve dpo-eval)
#
# Environment: STEPS (32), RUN (/work/realrun: the workspace and logs), LLAMA (the python of a venv with
# llama-cpp-python[server]), SYSTEMS (base+rag,tuned+rag), EVAL_ARGS (--no-edge), DATA_ARGS (none: the data
# build's defaults; e.g. "--decline-share 0.4"); DPO_EPOCHS (1), DPO_LR (1e-4), DPO_BETA (0.1). Each stage skips what is
# already there, so a stopped run resumes; it takes about 70 s per step on 2 CPU cores, then ~30 min to
# evaluate two systems. Not part of `make bench`: it needs the base model (`onboard base fetch`) and hours.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
ONBOARD=$ROOT/.venv/bin/onboard
STEPS=${STEPS:-32}
RUN=${RUN:-/work/realrun}
LLAMA=${LLAMA:-/work/llamavenv/bin/python}
SYSTEMS=${SYSTEMS:-base+rag,tuned+rag}
EVAL_ARGS=${EVAL_ARGS:---no-edge}
DATA_ARGS=${DATA_ARGS:-}
QWEN=${QWEN:-$HOME/.cache/onboard/models/qwen2.5-coder-0.5b-instruct/hf}
WS=$RUN/ws
export HF_HUB_OFFLINE=1
mkdir -p "$RUN/gguf" "$RUN/logs"

docs() {
  [ -d "$RUN/docs/zh" ] && return
  local faq
  faq=$(cd "$ROOT" && $PY -c "from bench.common import fetch_debian_faq; print(fetch_debian_faq())")
  mkdir -p "$RUN/docs/en" "$RUN/docs/zh"
  cp "$faq"/*.en.html "$RUN/docs/en/"
  cp "$faq"/zh-cn/*.html "$RUN/docs/zh/"
}

data() {
  [ -f "$WS/data/sft/train.jsonl" ] && return
  $ONBOARD ingest "$RUN/docs" -w "$WS"
  $ONBOARD data build -w "$WS" --kind sft --base "$QWEN" $DATA_ARGS
}

train() {
  [ -f "$RUN/trained" ] && return
  local resume=()
  [ -d "$WS/runs/sft/checkpoints" ] && resume=(--resume)  # a stopped run goes on from its last checkpoint
  $ONBOARD train -w "$WS" --stage sft --base "$QWEN" --method lora --epochs 1 --max-steps "$STEPS" \
    --batch-size 1 --grad-accum 4 --max-length 1024 --no-gradient-checkpointing "${resume[@]}"
  touch "$RUN/trained"
}

merge() {
  [ -d "$WS/models/sft" ] && return
  $ONBOARD merge -w "$WS" --out "$WS/models/sft"
}

export_gguf() {
  [ -f "$RUN/gguf/tuned.gguf" ] || $ONBOARD export -w "$WS" --format gguf --dtype q8_0 --model "$WS/models/sft" --out "$RUN/gguf/tuned.gguf"
  [ -f "$RUN/gguf/base.gguf" ] || $ONBOARD export -w "$WS" --format gguf --dtype q8_0 --model "$QWEN" --out "$RUN/gguf/base.gguf"
}

serve_one() {  # name port
  curl -sf "http://127.0.0.1:$2/v1/models" >/dev/null && return
  nohup "$LLAMA" -m llama_cpp.server --model "$RUN/gguf/$1.gguf" --host 127.0.0.1 --port "$2" --n_ctx 4096 \
    --n_threads 2 --model_alias "$1" >"$RUN/logs/llama-$1.log" 2>&1 &
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$2/v1/models" >/dev/null && return; sleep 1; done
  echo "llama.cpp server for $1 did not start: see $RUN/logs/llama-$1.log" >&2; exit 1
}

serve() { serve_one base 8101; serve_one tuned 8104; }

evaluate() {
  $ONBOARD eval -w "$WS" --base "$QWEN" --model "$WS/models/sft" --base-url http://127.0.0.1:8101/v1 \
    --model-url http://127.0.0.1:8104/v1 --name "sft-$STEPS" --repeats 0 --systems "$SYSTEMS" $EVAL_ARGS
}

dpo_data() {
  [ -f "$WS/data/dpo/train.jsonl" ] && return
  $ONBOARD data build -w "$WS" --kind dpo --base "$WS/models/sft" --dpo-pairs declines $DATA_ARGS
}

dpo_train() {
  [ -f "$RUN/dpo-trained" ] && return
  local resume=()
  [ -d "$WS/runs/dpo/checkpoints" ] && resume=(--resume)
  $ONBOARD train -w "$WS" --stage dpo --base "$QWEN" --init-adapter "$WS/runs/sft/adapter" --method lora \
    --epochs "${DPO_EPOCHS:-1}" --lr "${DPO_LR:-1e-4}" --beta "${DPO_BETA:-0.1}" --batch-size 1 --grad-accum 4 \
    --max-length 1024 --no-gradient-checkpointing "${resume[@]}"
  touch "$RUN/dpo-trained"
}

dpo_merge() {
  [ -d "$WS/models/dpo" ] && return
  $ONBOARD merge -w "$WS" --run "$WS/runs/dpo" --out "$WS/models/dpo"
}

dpo_export() {
  [ -f "$RUN/gguf/dpo.gguf" ] || $ONBOARD export -w "$WS" --format gguf --dtype q8_0 --model "$WS/models/dpo" --out "$RUN/gguf/dpo.gguf"
}

dpo_evaluate() {
  $ONBOARD eval -w "$WS" --base "$WS/models/sft" --model "$WS/models/dpo" --base-url http://127.0.0.1:8104/v1 \
    --model-url http://127.0.0.1:8105/v1 --name "dpo-$STEPS" --repeats 0 --systems "$SYSTEMS" $EVAL_ARGS
}

stop() { pkill -f "llama_cpp.server --model $RUN/gguf" || true; }

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(docs data train merge export serve eval stop)
[ "${stages[*]}" = dpo ] && stages=(dpo-data dpo-train dpo-merge dpo-export dpo-serve dpo-eval stop)
for s in "${stages[@]}"; do
  echo "== $s ($(date +%T))"
  case $s in
    docs) docs ;; data) data ;; train) train ;; merge) merge ;; export) export_gguf ;; serve) serve ;;
    eval) evaluate ;; stop) stop ;;
    dpo-data) dpo_data ;; dpo-train) dpo_train ;; dpo-merge) dpo_merge ;; dpo-export) dpo_export ;;
    dpo-serve) serve_one tuned 8104; serve_one dpo 8105 ;; dpo-eval) dpo_evaluate ;;
    *) echo "unknown stage $s (docs data train merge export serve eval stop; dpo-data dpo-train dpo-merge" \
            "dpo-export dpo-serve dpo-eval)" >&2; exit 2 ;;
  esac
done
