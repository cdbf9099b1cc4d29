# The course's commands. Every target sets up what it needs first (idempotently).
#   make test                 set up, then lint and run the whole test suite (what CI runs)
#   make check                set up, then lint and run the fast tests (no jobs, notebooks or browser): ~1 min
#   make course [PROFILE=..]  set up, then execute every chapter into build/<profile>/ (auto, smoke, cpu, gpu);
#                             finished training runs are reused, RECOMPUTE=1 trains them all again
#   make lab                  set up, then open JupyterLab on the course
#   make bench                Lightning vs plain PyTorch, DDP on one rank vs none: a table of ratios
#   make speedrun [RUNS=n] [LOO_RUNS=n] [BASELINE_RUNS=n]
#                             the recipe to a fixed Fashion-MNIST accuracy n times, the baseline and each
#                             leave-one-out beside it (defaults per profile) -> build/speedrun/summary-<profile>.json
#   make gpu-check            full-size ResNet-50 on this machine's GPU -> results/reference/
#   make gpu-course           chapters 00-02 in the gpu profile on this machine's GPU, no papermill -> results/reference/
#   make release [STUDENT=..] student notebooks labs/*.ipynb from labs/source/; with STUDENT=dir, also the
#                             learners' copy of the course there (no solutions, no hidden tests)
#   make grade SUBMISSIONS=.. grade submitted lab notebooks (files or folders), each in a bubblewrap sandbox
#                             -> $(GRADES)/gradebook.csv (JOBS=2 at once)
SHELL := /bin/bash
PYTHON ?= python3
PROFILE ?= auto
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CHROMIUM := /usr/bin/chromium
RECOMPUTE ?=
RUNS ?=
LOO_RUNS ?=
BASELINE_RUNS ?=

GRADES ?= build/grades
comma := ,
JOBS ?= 2
STUDENT ?=
BWRAP := /usr/bin/bwrap

.PHONY: setup test check lint course lab bench speedrun gpu-check gpu-course release grade clean

setup: $(STAMP) $(DATA) $(CHROMIUM) $(BWRAP)

$(STAMP): requirements.txt lib/pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fasttrain)" >/dev/null
	@touch $(STAMP)

# A Debian package, installed as root, else through sudo, else a message saying what to run ($(2)).
define apt_install
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
	else \
	  echo "$(1) is not installed: run 'sudo apt-get install $(1)' $(2)"; \
	fi
endef

# Fashion-MNIST from Debian's package (offline). Without root, say what to run instead of failing later.
$(DATA):
	$(call apt_install,dataset-fashion-mnist,or let the course download it (needs internet).)

# Debian's Chromium, for the test that runs a chapter in JupyterLab in a real browser (Playwright drives it).
$(CHROMIUM):
	$(call apt_install,chromium,for the browser test (tests/test_lab_browser.py skips without it$(comma) except under CI).)

# Debian's bubblewrap: the sandbox the grader runs each submission in (it refuses untrusted grading without it).
$(BWRAP):
	$(call apt_install,bubblewrap,before grading a class (the grader refuses untrusted notebooks without it; --unsafe-no-sandbox for trusted ones).)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check lib tests ci

test: lint
	$(PY) -m pytest -q tests

check: lint
	$(PY) -m pytest -q -m "not slow" tests

course: setup
	FASTTRAIN_RECOMPUTE=$(RECOMPUTE) $(PY) ci/run_notebooks.py --profile $(PROFILE)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

bench: setup
	$(PY) -m fasttrain.bench --profile $(PROFILE)

speedrun: setup
	$(PY) -m fasttrain.chapters.ch04_speedrun --profile $(PROFILE) $(if $(RUNS),--runs $(RUNS)) \
	  $(if $(LOO_RUNS),--loo-runs $(LOO_RUNS)) $(if $(BASELINE_RUNS),--baseline-runs $(BASELINE_RUNS))

gpu-check:
	bash ci/gpu_check.sh

gpu-course:
	bash ci/gpu_course.sh

release: setup
	$(PY) -m fasttrain.grading release
	@if [ -n "$(STUDENT)" ]; then $(PY) -m fasttrain.grading export-student $(STUDENT); fi

grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "Say what to grade: make grade SUBMISSIONS=path/to/submissions"; exit 2; }
	$(PY) -m fasttrain.grading autograde $(SUBMISSIONS) --out $(GRADES) --jobs $(JOBS)

clean:
	rm -rf build
