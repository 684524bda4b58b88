import pytest

from ecgfast.base.extension import EXTENSION_AVAILABLE

BACKENDS = ["cpp", "numba", "torch"]


def _available(name):
    return pytest.param(name, marks=pytest.mark.skipif(
        name == "cpp" and not EXTENSION_AVAILABLE, reason="compiled extension not built"))


@pytest.fixture(params=[_available(b) for b in BACKENDS])
def backend(request):
    return request.param
