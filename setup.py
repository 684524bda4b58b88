"""Build ecgfast and its compiled torch ops.

    pip install torch==2.13.0
    pip install --no-build-isolation -e .

Sources are found by layout, so adding an op needs no edit here:
``csrc/**/*.cpp`` form the CPU extension; the CUDA kernels (``csrc/**/cuda/*.cu``,
each registering itself for the CUDA dispatch key) are added when the
installed torch has CUDA and a CUDA toolkit (nvcc) is found. Without a
toolkit the CPU extension is built and a message says how to get the CUDA one
(``CUDA_HOME=/usr/local/cuda pip install --no-build-isolation -e .``).
Set ``ECGFAST_NO_EXTENSION=1`` to install the pure-Python package
(the Numba / torch fallbacks then serve every op), ``ECGFAST_NO_CUDA=1`` to
build the CPU extension only.
"""
import glob
import os
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
# Supported range: CPython 3.10+ with torch 2.11 to 2.14 (tested: 2.13 CPU, the suite; 2.14.1+cu130,
# the CUDA build; 2.11, the CPU suite and the GPU machine's torch). No upper bound: the extension is
# built against the torch already installed, and a cap would make pip replace a newer one.
PYTHON_REQUIRES = ">=3.10"
TORCH_REQUIRES = "torch>=2.11"
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"


def _sources():
    cpp = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    cu = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
    return cpp, cu


def _nvidia_wheel_includes(cuda_version):
    """Headers (cusparse.h, cublas_v2.h, ...) of the nvidia-* wheels torch depends on.

    CUDA 13 wheels put them under nvidia/cu13/include, older ones under nvidia/<lib>/include.
    ATen/cuda/CUDAContext.h needs them when the toolkit itself lacks those libraries.
    """
    try:
        import nvidia
    except ImportError:
        return []
    major = cuda_version.split(".")[0]
    dirs = []
    for root in nvidia.__path__:
        merged = os.path.join(root, f"cu{major}", "include")
        dirs += [merged] if os.path.isdir(merged) else sorted(glob.glob(os.path.join(root, "*", "include")))
    return list(dict.fromkeys(dirs))


def _cuda_toolkit():
    """CUDA_HOME when its nvcc exists, else None."""
    from torch.utils import cpp_extension

    home = cpp_extension.CUDA_HOME
    if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
        return home
    return None


def _extensions():
    if os.environ.get("ECGFAST_NO_EXTENSION") == "1":
        return [], {}
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    cpu, cuda = _sources()
    debug = os.environ.get("ECGFAST_DEBUG") == "1"
    cxx = ["-O0", "-g"] if debug else ["-O3", "-fno-math-errno"]
    cxx += ["-fopenmp"]  # torch adds its -std= and Py_LIMITED_API (py_limited_api=True)
    kwargs = dict(
        name="ecgfast._C",
        sources=cpu,
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )
    use_cuda = torch.version.cuda is not None and os.environ.get("ECGFAST_NO_CUDA") != "1"
    if use_cuda and _cuda_toolkit() is None:
        print(f"ecgfast: torch {torch.__version__} has CUDA {torch.version.cuda} but no CUDA toolkit (nvcc) was "
              "found, so only the CPU extension is built. For the CUDA kernels install a CUDA toolkit of the same "
              "major version and rebuild with CUDA_HOME pointing at it, e.g.\n"
              "    CUDA_HOME=/usr/local/cuda pip install --no-build-isolation -e .", file=sys.stderr)
        use_cuda = False
    if use_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        # torch picks the architectures of the visible GPUs; with none (a build machine) it has
        # nothing to pick. Ampere/Ada (sm_80) and Hopper (sm_90) cubins, plus PTX that newer GPUs JIT.
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
        print(f"ecgfast: no GPU visible and TORCH_CUDA_ARCH_LIST unset: building for {DEFAULT_CUDA_ARCHS} "
              "(set TORCH_CUDA_ARCH_LIST to choose)", file=sys.stderr)
    if use_cuda:
        kwargs["sources"] = cpu + cuda
        # -isystem: searched after the toolkit's -I, so the wheels only add what the toolkit lacks.
        wheels = [f for d in _nvidia_wheel_includes(torch.version.cuda) for f in ("-isystem", d)]
        kwargs["extra_compile_args"]["nvcc"] = (["-O0", "-g"] if debug else ["-O3"]) + wheels
        ext = CUDAExtension(**kwargs)
    else:
        ext = CppExtension(**kwargs)
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()

setup(
    name="ecgfast",
    version="0.1.0",
    description="Fast self-supervised learning on 12-lead ECGs: PTB-XL data layer, "
    "fused augmentation and loss ops, SimCLR/BYOL, label-efficient evaluation.",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=PYTHON_REQUIRES,
    packages=find_packages(include=["ecgfast", "ecgfast.*"]),
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    install_requires=[
        TORCH_REQUIRES,
        "numpy>=1.24",
        "scipy>=1.10",
        "numba>=0.59",
        "wfdb>=4.1",
        "h5py>=3.8",
        "pandas>=2.0",
        "tqdm>=4.60",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
    ],
    extras_require={
        # onnx/onnxscript too, so that `make test` (pip install -e ".[test]") runs the ONNX export
        # tests instead of skipping them (they check with onnx.reference where onnxruntime is absent)
        "test": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "onnx>=1.16", "onnxscript>=0.1",
                 "import-linter>=2.1", "ruff>=0.6"],
        "onnx": ["onnx>=1.16", "onnxscript>=0.1"],
    },
    entry_points={"console_scripts": ["ecgfast=ecgfast.cli:main"]},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
