"""The data layer's error types; all are ``ecgfast.base.errors.DataError`` (and so ``ValueError``)."""
from ecgfast.base.errors import DataError


class PTBXLError(DataError):
    """Bad PTB-XL or WFDB record input. The message names the file or record and the problem."""


class MissingRecordError(PTBXLError):
    """A record that an index names (PTB-XL's csv, a corpus layout's index, a record list) is absent:
    a partial download. ``ecgfast cache`` / ``ecgfast corpus build`` skip and count it under
    ``--skip-missing``. The one missing-record type: ``MissingSourceRecord`` is this class."""


# The corpus readers' name for it (``ecgfast.data.sources.readers``): the same class, not a subclass.
MissingSourceRecord = MissingRecordError


class BadRecordError(PTBXLError):
    """A record whose files are present but unusable (NaN samples, truncated, corrupted or
    inconsistent with what its layout promises): ``--skip-bad`` skips it."""


class UnsafePathError(PTBXLError):
    """A path from a csv or a header that is empty or resolves outside the data root: never skipped."""


class CacheError(PTBXLError):
    """An ecgfast cache file that is corrupted or of another format version: rebuild it.

    A ``PTBXLError`` (so ``except PTBXLError`` written before it existed still catches it).
    """


__all__ = ["BadRecordError", "CacheError", "DataError", "MissingRecordError", "MissingSourceRecord", "PTBXLError",
           "UnsafePathError"]
