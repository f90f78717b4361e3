# Thin wrapper over CMake. Every target installs missing Debian packages
# first (deploy/install-deps.sh is a no-op when all are present).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench bench-coordinator bench-pipeline bench-train clean

all: build

deps:
	@deploy/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD_DIR)

bench: bench-coordinator bench-pipeline bench-train

bench-coordinator: build
	@deploy/install-deps.sh --bench
	@bench/run_coordinator_bench.sh $(BUILD_DIR)

bench-train: build
	@deploy/install-deps.sh --bench
	@bench/run_train_bench.sh $(BUILD_DIR)

bench-pipeline: build
	@deploy/install-deps.sh --bench
	@bench/run_pipeline_bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
