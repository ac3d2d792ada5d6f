PYTHON ?= python3
SHARED ?= ../shared/data

.PHONY: install test bench bench-paths bench-decode oracle default-eval lint clean

install:  ## install openpaf (CPU torch pinned) and test tools
	$(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[test]"

test:  ## the whole test suite (CPU, tiny models, small images)
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

bench:  ## speed: pipeline stages + FPS (cmu_vgg19, random init, CPU) and decoder-only
	openpaf benchmark --fps --device cpu --json benchmarks/fps_cpu_fp32.json
	openpaf benchmark --fps --device cpu --precision bf16 --json benchmarks/fps_cpu_bf16.json
	openpaf benchmark --no-network --decode-repeats 20 --json benchmarks/decoder.json

bench-paths:  ## CPU execution paths of the network (eager, channels_last, bf16, ...), ~10 min
	openpaf benchmark --cpu-paths --model cmu_vgg19 --repeats 4 --json benchmarks/cpu_paths.json
	openpaf benchmark --cpu-paths --model small --repeats 5 --json benchmarks/cpu_paths_small.json

oracle:  ## decoder accuracy and speed on oracle maps of coco/val
	openpaf eval --ann $(SHARED)/coco/val.json --oracle --json benchmarks/oracle_val.json

default-eval:  ## AP of the shipped default model on coco/val (fp32, and bf16)
	openpaf eval --ann $(SHARED)/coco/val.json --images $(SHARED)/coco/val -q --json benchmarks/default_val.json
	openpaf eval --ann $(SHARED)/coco/val.json --images $(SHARED)/coco/val -q --precision bf16 --json benchmarks/default_val_bf16.json

bench-decode: oracle  ## decoder speed is part of the oracle report (decode_ms)

clean:
	rm -rf build dist *.egg-info .pytest_cache openpaf_out
