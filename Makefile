# Set-up, tests and demo. Everything lives in .venv; `make test` and `make demo` set it up on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pip through the venv's python: a venv copied by hard links keeps a bin/pip whose shebang names the original venv
PIP := $(PY) -m pip
STAMP := $(VENV)/.vli-installed
LMMS_STAMP := $(VENV)/.vli-lmms-installed
REF := .cache/reference/lavis_main

.PHONY: setup test demo bench clean

setup: $(STAMP) $(REF)/.done

# torch first (pinned: these wheels lie on the build machines' disk), then LAVIS without its stale metadata
# (it pins transformers<4.27, which has no LLaMA), then this project with the dependency set of constraints.txt.
$(STAMP): setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q --no-deps salesforce-lavis==1.0.2
	$(PIP) install -q -c constraints.txt -e ".[test,web,lowmem]"
	$(PY) -c "import lavis_vislinginstruct, lavis.models; print('lavis-vislinginstruct ready')"
	touch $@

# The `lmms` extra (lmms-eval), which the lmms-eval adapter's tests need: `make test` installs it, `make setup` not.
$(LMMS_STAMP): $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[test,web,lowmem,lmms]"
	$(PY) -c "import lmms_eval.models as m; assert 'vislinginstruct' in m.list_available_models()"
	touch $@

# LAVIS main's InstructBLIP source (as shipped in the ammico-lavis wheel), used only by the equivalence tests.
$(REF)/.done:
	mkdir -p .cache/reference
	$(PIP) download -q --no-deps ammico-lavis==1.0.2.3 -d .cache/reference
	$(PY) -m zipfile -e .cache/reference/ammico_lavis-1.0.2.3-py3-none-any.whl .cache/reference/wheel
	mkdir -p $(REF)
	cp .cache/reference/wheel/lavis/models/blip2_models/blip2_vicuna_instruct.py \
	   .cache/reference/wheel/lavis/models/blip2_models/blip2_t5_instruct.py $(REF)/
	rm -rf .cache/reference/wheel
	touch $@

test: setup $(LMMS_STAMP)
	$(PY) -m flake8 lavis_vislinginstruct lavis_vislinginstruct_lmms.py tests bench tools train.py evaluate.py
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

# The demo starts from the shipped base model (lavis_vislinginstruct/assets/demo_base); FROM_SCRATCH=1 pretrains it
# first (about 70 minutes on 2 cores); SEEDS=3 runs stage B and the evaluation under three seeds.
FROM_SCRATCH ?=
SEEDS ?= 1
demo: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m lavis_vislinginstruct.demo --seeds $(SEEDS) $(if $(FROM_SCRATCH),--from-scratch)

bench: setup
	$(PY) bench/ranking.py
	$(PY) bench/aio.py

clean:
	rm -rf $(VENV) .cache
