"""Build ecgfast and its compiled torch ops.

    pip install torch==2.13.0
    pip install --no-build-isolation -e .

Sources are found by layout, so adding an op needs no edit here:
``csrc/**/*.cpp`` outside ``cuda/`` folders form the CPU extension; the
``cuda/`` folders (plain-CUDA ``.cu`` kernels and their ``*_cuda.cpp`` torch
bindings) are added only when the installed torch has CUDA.
Set ``ECGFAST_NO_EXTENSION=1`` to install the pure-Python package
(the Numba / torch fallbacks then serve every op).
"""
import glob
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _sources():
    cpp = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    cu = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
    cpu = [s for s in cpp if f"{os.sep}cuda{os.sep}" not in s]
    cuda = [s for s in cpp if f"{os.sep}cuda{os.sep}" in s] + cu
    return cpu, cuda


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
    if use_cuda:
        kwargs["sources"] = cpu + cuda
        kwargs["extra_compile_args"]["nvcc"] = ["-O3", "-DECGFAST_WITH_CUDA"]
        kwargs["extra_compile_args"]["cxx"].append("-DECGFAST_WITH_CUDA")
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
    python_requires=">=3.10",
    packages=find_packages(include=["ecgfast", "ecgfast.*"]),
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    install_requires=[
        "torch>=2.4",
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
        "test": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6"],
        "onnx": ["onnx>=1.16", "onnxscript>=0.1"],
    },
    entry_points={"console_scripts": ["ecgfast=ecgfast.cli:main"]},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
