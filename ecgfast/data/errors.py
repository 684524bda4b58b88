"""The data layer's error types; all are ``ecgfast.base.errors.DataError`` (and so ``ValueError``)."""
from ecgfast.base.errors import DataError


class PTBXLError(DataError):
    """Bad PTB-XL input. The message names the file or record and the problem."""


class MissingRecordError(PTBXLError):
    """A record the csv names is absent from the folder (a partial download): ``--skip-missing``."""


class BadRecordError(PTBXLError):
    """A record whose files are present but unusable (NaN samples, truncated, corrupted or
    inconsistent with PTB-XL): ``--skip-bad`` skips it."""


class UnsafePathError(PTBXLError):
    """A path from a csv or a header that is empty or resolves outside the data root: never skipped."""


class CacheError(PTBXLError):
    """An ecgfast cache file that is corrupted or of another format version: rebuild it.

    A ``PTBXLError`` (so ``except PTBXLError`` written before it existed still catches it).
    """


__all__ = ["BadRecordError", "CacheError", "DataError", "MissingRecordError", "PTBXLError", "UnsafePathError"]
