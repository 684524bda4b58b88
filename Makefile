# The two set-up commands of the README:
#   make demo   install everything, then run the whole job on a synthetic PTB-XL
#   make test   install everything, then run every test (CUDA build check, C++, Python) and a
#               benchmark smoke run (python -m benchmarks --quick: proves the suite runs, asserts no timing)
PYTHON ?= python
DEMO_OUT ?= runs/demo
TORCH_VERSION ?= 2.13.0

.PHONY: install demo test test-python test-cpp check-cuda-build bench bench-quick gpu-check gpu-wheels clean

install:
	$(PYTHON) -m pip install --upgrade "setuptools>=64" wheel ninja pybind11
	@# A torch with CUDA (a GPU machine) is kept; otherwise the CPU torch the project is tested with.
	$(PYTHON) -c "import torch, sys; sys.exit(torch.version.cuda is None)" 2>/dev/null || \
	  $(PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	$(PYTHON) -m pip install --no-build-isolation -e ".[test]"
	@# pip hides setup.py's output: repeat its note when a CUDA torch got a CPU-only build.
	@$(PYTHON) -c "import torch, ecgfast._C; has = torch._C._dispatch_has_kernel_for_dispatch_key('ecgfast::augment_views', 'CUDA'); \
	  print('ecgfast: torch has CUDA but no CUDA toolkit was found: CPU kernels only; for the CUDA ones: CUDA_HOME=/usr/local/cuda make install') \
	  if torch.version.cuda and not has else None" || true

demo: install
	$(PYTHON) -m ecgfast demo --out $(DEMO_OUT)

test: install check-cuda-build test-cpp test-python bench-quick

# The CUDA kernels built with nvcc against a CUDA torch in .venv-cuda (from a copy
# of the tree), then checked registered; see tools/check_cuda_build.sh.
check-cuda-build:
	bash tools/check_cuda_build.sh

test-cpp:
	cmake -S . -B build-cmake \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
	cmake --build build-cmake
	ctest --test-dir build-cmake --output-on-failure

test-python:
	$(PYTHON) -m pytest tests -q

bench:
	$(PYTHON) -m benchmarks

bench-quick:
	$(PYTHON) -m benchmarks --quick

# On a lent GPU machine (no registry, its own torch): build there, run the cuda tests, GPU training
# runs, NCCL and the CUDA benchmarks, and write one summary; see tools/gpu_check.sh.
gpu-check:
	bash tools/gpu_check.sh

# Here, before a GPU check: the wheels the GPU machine lacks (CPython 3.12, manylinux), into .whl/.
GPU_WHEELS ?= wfdb==4.3.1 soundfile==0.13.1 cffi==2.0.0 pycparser==2.23
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform any -d .whl $(GPU_WHEELS)

clean:
	rm -rf build build-cmake ecgfast/*.so *.egg-info
