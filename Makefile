PYTHON ?= python3
SHARED ?= ../shared/data

.PHONY: install test bench bench-decode oracle lint clean

install:  ## install openpaf (CPU torch pinned) and test tools
	$(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[test]"

test:  ## the whole test suite (CPU, tiny models, small images)
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

oracle:  ## decoder accuracy and speed on oracle maps of coco/val
	openpaf eval --ann $(SHARED)/coco/val.json --oracle --json benchmarks/oracle_val.json

bench-decode: oracle  ## decoder speed is part of the oracle report (decode_ms)

clean:
	rm -rf build dist *.egg-info .pytest_cache openpaf_out
