# Two entry points, each installing what it needs on a fresh machine:
#   make demo   the main job
#   make test   the offline test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo clean-demo test ffmpeg browser benchmark clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# torchcodec loads the system FFmpeg libraries; PyAV brings its own, so this is best effort when not root.
ffmpeg:
	@if ! ldconfig -p 2>/dev/null | grep -q libavcodec; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; \
		else echo "FFmpeg libraries missing and not root: torchcodec will be unavailable, PyAV is used instead"; fi; \
	fi

# the demo's browser test (tests/test_demo.py) drives Debian's chromium through Selenium
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
		else echo "chromium or chromium-driver missing and not root: the browser test will be skipped"; fi; \
	fi

DEMO_DIR := outputs/avcanet-demo

# generate the synthetic set, train, evaluate on its test split, then predict the held-out clips and sum up.
# Each run trains again from scratch: the checkpoints of an earlier run are removed (train.py would resume from
# them and train 0 steps); the generated clips in $(DEMO_DIR)/data are reused.
demo: $(STAMP) ffmpeg
	rm -rf $(DEMO_DIR)/checkpoint-*
	HF_HUB_OFFLINE=1 $(PY) examples/train.py --output_dir $(DEMO_DIR)
	HF_HUB_OFFLINE=1 $(PY) examples/predict.py $(DEMO_DIR) $(DEMO_DIR)/data/videos/test --top_k 2 \
		--output $(DEMO_DIR)/predictions.jsonl
	@$(PY) examples/demo_summary.py $(DEMO_DIR)

# delete what `make demo` made (model, checkpoints, generated clips); the virtual environment stays
clean-demo:
	rm -rf $(DEMO_DIR)

test: $(STAMP) ffmpeg browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider --timeout 900 tests

# the quick mode of each benchmark (under a minute each); drop --quick for the full runs of benchmarks/README.md
benchmark: $(STAMP) ffmpeg
	$(PY) -m pip install --quiet librosa  # only the authors' pipeline baseline needs it
	$(PY) benchmarks/preprocessing.py --quick
	$(PY) benchmarks/model.py --quick
	$(PY) benchmarks/data_loading.py --quick
	$(PY) benchmarks/prepared_data.py --quick

clean:
	rm -rf $(VENV) outputs
