# Set-up and everyday commands. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOURCES ?= ../shared/data
TRAINSET ?= data

.PHONY: demo test lint bench recipe-deps training-data public-corpus clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) -m src.inference_CNN assets/sample_human.mp3 assets/sample_ai.mp3 --format csv

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# Speed and memory on this machine (about 5 minutes on 2 cores); see README, "Speed".
bench: $(VENV)/.installed
	$(PY) -m benchmarks.run --output benchmarks/latest.md

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
SNAPSHOTS ?=
CORPUS ?= corpus
public-corpus: $(VENV)/.installed
	$(PY) -m data.build_public_corpus $(if $(SNAPSHOTS),--snapshots $(SNAPSHOTS)) --out $(CORPUS)
	$(PY) -m data.convert_and_divide --root $(CORPUS)
	$(PY) getGlobalStats.py --root $(CORPUS)

clean-venv:
	rm -rf $(VENV)
