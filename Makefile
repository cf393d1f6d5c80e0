# dl4img — two commands: `make demo` and `make test`.
# Both install what is missing first (Debian packages), so a fresh Debian 12
# machine with Go needs nothing else.

# 4–7x faster matmul on GoMLX's pure-Go backend (measured on AVX2).
export GOEXPERIMENT := simd
# With the simd experiment, math.Exp's FMA path runs 50-100x slower (dirty
# upper vector state; see cmd/dl4img/fma_simd_amd64.go): the Go backend's
# Logistic/Tanh/Exp use it. The binary re-executes itself with this; tests
# get it here.
export GODEBUG ?= cpu.fma=off
# dl4img never lets GoMLX download PJRT plugins at run time.
export GOMLX_NO_AUTO_INSTALL := 1
# GDAL's block cache defaults to 5% of RAM: bound it.
export GDAL_CACHEMAX ?= 128

GO      ?= go
BIN     := bin/dl4img
APT_PKGS := libgdal-dev libdnnl-dev libjpeg-dev pkg-config fonts-dejavu-core fonts-wqy-zenhei postgresql chromium
# Packages where the race detector's 5-10x slowdown is affordable: the
# runner itself (concurrency lives there). Model packages run without it.
RACE_PKGS := ./store/... ./jobs/... ./tasks ./cmd/...
# -race turns on checkptr, which trips over GoMLX's Go-backend matmul
# (pointer arithmetic it does on purpose); keep the race detector, drop that.
NOCHECKPTR := -gcflags=all=-d=checkptr=0

.PHONY: all deps build demo selftest test test-race test-models fuzz soak bench bench-formula gpu-binary gpu-ref gpu-check-dry clean

all: build

deps:
	@missing=""; for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(GO) build -o $(BIN) ./cmd/dl4img

# The main job, small, on the pure-Go backend, to a finished submission:
# the arithmetic-captcha reader (generate → train briefly → evaluate →
# result.txt), ~2 minutes on 2 cores with the CPU engine. `make selftest` checks the runner
# alone in seconds.
demo: build
	@mkdir -p demo
	./$(BIN) --db demo/dl4img.db --workdir demo/runs run arith-ctc --backend go --set preset=demo
	@echo "history: ./$(BIN) --db demo/dl4img.db jobs list"

selftest: build
	@mkdir -p demo
	./$(BIN) --db demo/dl4img.db --workdir demo/runs run selftest --backend go --set preset=demo

test: deps
	$(GO) vet ./...
	$(GO) build -tags nogdal,nodnnl -o /dev/null ./cmd/dl4img
	$(GO) test -tags nodnnl -count=1 -timeout 20m ./engine/... ./tasks
	$(GO) test -race $(NOCHECKPTR) -count=1 -timeout 20m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 40m $$($(GO) list ./... | grep -v -e /store -e /jobs -e '/tasks$$' -e /cmd/)
	FUZZTIME=3s bash scripts/fuzz.sh

# Every fuzz target (parsers of user input: labels.txt, --config/--set,
# ONNX, images, manifests, db copy input, web routes) for FUZZTIME each;
# `make test` runs them for 3 s each. A crasher lands in the package's
# testdata/fuzz/ and fails the run.
FUZZTIME ?= 1m
fuzz: deps
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# The soak benchmark (README "Soak"): 1,000 jobs, 4 workers, random
# SIGKILLs for 10 minutes, PostgreSQL restarted twice; then SQLite. 25-40 min.
soak: deps
	bash bench/soak.sh

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./...

# Line extraction against the same pipeline in OpenCV-Python on the same
# 100 generated final-round images, one core each, CPU time per image
# (the OpenCV half needs Debian's python3-opencv).
FORMULA_BENCH_DIR ?= bin/formula-bench
PYTHON ?= /usr/bin/python3
bench-formula: build
	@[ -f $(FORMULA_BENCH_DIR)/boxes.csv ] || ./$(BIN) -q gen formula --out $(FORMULA_BENCH_DIR) -n 100 --seed 7
	FORMULA_DIR=$(abspath $(FORMULA_BENCH_DIR)) GOMAXPROCS=1 $(GO) test -count=1 -run '^TestExtractDir$$' -v ./ocr/formula/lines
	$(PYTHON) bench/formula_opencv.py $(FORMULA_BENCH_DIR)

# For a GPU machine without Go, GDAL or oneDNN: every kind but segment,
# linked against libc only; run scripts/gpu-check.sh there.
gpu-binary:
	$(GO) build -tags nogdal,nodnnl -ldflags '-s -w' -o bin/dl4img-gpu ./cmd/dl4img

# The Go backend's values that scripts/gpu-check.sh compares XLA against.
gpu-ref: build
	./$(BIN) backend-check --backend go --out testdata/gpu/check-go.json

# scripts/gpu-check.sh without a GPU (Go backend, tiny batches, PyTorch
# CPU): checks the script itself.
gpu-check-dry: gpu-binary
	GPU_CHECK_DRY=1 OUT=bin/gpu-check-dry PYTHON=/usr/bin/python3 bash scripts/gpu-check.sh

clean:
	rm -rf bin demo
