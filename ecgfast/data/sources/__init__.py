"""Readers of the 12-lead ECG corpora ecgfast pretrains on (see ``ecgfast.data.sources.readers``)."""
