"""Pretraining corpora of any size: harmonise, shards + manifest, streaming loader, PTB-XL dedup.

The API the training code uses::

    from ecgfast.data.corpus import open_corpus, StreamingLoader
    a = open_corpus("cinc/manifest.json")      # verified: every shard file hashed (unchanged ones remembered)
                                               # .sampling_rate, .signal_length, .classes, .fingerprint_digest, len()
    b = open_corpus("mimic/manifest.json")
    loader = StreamingLoader([(a, 0.7), (b, 0.3)], batch_size=256, seed=0, epoch_samples=200_000,
                             num_replicas=world, rank=rank, memory_budget_mb=256, drop_last=True)
    for epoch in range(E):
        loader.set_epoch(epoch)                # set_epoch(epoch, start_batch=k) resumes mid-epoch
        for batch in loader:                   # Batch(signals (B,12,T) float32 mV, labels (B,5), index (B,))
            ...
        loader.counts                          # samples drawn from each corpus this epoch
"""
import importlib

_EXPORTS = {
    "open_corpus": "store", "Corpus": "store",
    "StreamingLoader": "stream",
    "build_corpus": "build", "build_shard": "build", "build_corpus_from_arrays": "build",
    "harmonise": "harmonise", "resample": "harmonise",
    "descriptor": "dedup", "DuplicateIndex": "dedup", "ptbxl_reference": "dedup",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
