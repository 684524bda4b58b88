"""PTB-XL for ecgfast: the real layout read with wfdb, one HDF5 cache, batched loading.

Attributes are imported lazily so that reader processes (which only need
``records``) start without importing torch.
"""
import importlib

_EXPORTS = {
    "PTBXLError": "errors", "CacheError": "errors", "BadRecordError": "errors", "UnsafePathError": "errors",
    "verify_cache": "cache",
    "load_metadata": "metadata", "PTBXLMetadata": "metadata",
    "read_record": "records", "MissingRecordError": "errors", "MissingSourceRecord": "errors",
    "build_cache": "cache", "open_cache": "cache", "ensure_cache": "cache", "ECGCache": "cache",
    "ECGBatchLoader": "loader", "Batch": "loader", "Normalizer": "loader",
    "label_fraction_indices": "loader",
    "write_synthetic_ptbxl": "synthetic",
    "open_corpus": "corpus", "Corpus": "corpus", "StreamingLoader": "corpus", "build_corpus": "corpus",
    "open_source": "sources.readers",
    "ECGSource": "source", "open_input": "source", "read_wfdb": "records",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
