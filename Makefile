# Set-up and everyday commands. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOURCES ?= ../shared/data
CODEC ?= mp3
TRAINSET ?= data

.PHONY: demo test browser ffmpeg lint bench bench-avx2 bench-gpu bench-scan recipe-deps training-data public-corpus clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) -m src.inference_CNN assets/sample_human.mp3 assets/sample_ai.mp3 --format csv

test: $(VENV)/.installed browser ffmpeg
	$(PY) -m pytest -q

# Debian's Chromium for the HTML report's browser test; where it cannot be installed, that one test is skipped.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1; } || \
	  echo "note: could not install chromium; the HTML report's browser test will be skipped"

# ffmpeg: the original Ai-SPY path that `make bench` compares against, and the m4a/aac/opus fallback tests.
ffmpeg:
	@command -v ffmpeg >/dev/null || { apt-get install -y -qq ffmpeg >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq ffmpeg; } >/dev/null 2>&1; } || \
	  echo "note: could not install ffmpeg; the tests that need it will be skipped"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# Speed and memory on this machine, against the original Ai-SPY path (about 15 minutes on 2 cores); see README, "Speed".
bench: $(VENV)/.installed ffmpeg
	$(PY) -m benchmarks.run --output benchmarks/latest.md

# The same, as on a laptop CPU with AVX2 only and no native bf16 (PyTorch and oneDNN capped at AVX2).
bench-avx2: $(VENV)/.installed ffmpeg
	$(PY) -m benchmarks.run --simulate-avx2 --output benchmarks/latest-avx2.md

# CUDA paths (parity with the CPU, inference and training speed) on a machine with an NVIDIA GPU, ~4 minutes.
bench-gpu: $(VENV)/.installed
	$(PY) -m benchmarks.gpu --output benchmarks/latest-gpu.md

# Peak memory of scanning 2,000 and 20,000 short files (about 10 minutes on 2 cores); see README, "Scanning many files".
bench-scan: $(VENV)/.installed
	$(PY) -m benchmarks.scan_memory

# --- the recipe behind pretrained_weights/ (see README, "Reproducing the shipped weights") ---
$(VENV)/.recipe: $(VENV)/.installed requirements-recipe.txt
	apt-get update -qq && apt-get install -y -qq espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
	$(PY) -m pip install --quiet -r requirements-recipe.txt
	$(PY) -m pip install --quiet --no-deps pyopenjtalk-plus==0.4.1.post10 sudachipy==0.7.0
	touch $@

recipe-deps: $(VENV)/.recipe

training-data: $(VENV)/.recipe
	$(PY) -m data.build_training_set --sources $(SOURCES) --out $(TRAINSET)
	$(PY) -m data.convert_and_divide --root $(TRAINSET)
	$(PY) getGlobalStats.py --root $(TRAINSET)

# --- the corpus behind pretrained_weights/: public repositories at pinned commits (data/sources.csv) ---
# SNAPSHOTS: a folder of local repository snapshots; repositories not found there are cloned (needs internet).
# TRAIN_RATIO: cap on a training repository's larger class, in multiples of its smaller one (default 3).
SNAPSHOTS ?=
CORPUS ?= corpus
TRAIN_RATIO ?=
public-corpus: $(VENV)/.installed ffmpeg
	$(PY) -m data.build_public_corpus $(if $(SNAPSHOTS),--snapshots $(SNAPSHOTS)) $(if $(TRAIN_RATIO),--train-ratio $(TRAIN_RATIO)) --out $(CORPUS)
	$(PY) -m data.convert_and_divide --root $(CORPUS) --codec $(CODEC)
	$(PY) getGlobalStats.py --root $(CORPUS)

clean-venv:
	rm -rf $(VENV)
