from ecgfast.errors import DataError


class PTBXLError(DataError):
    """Bad PTB-XL input. The message names the file or record and the problem."""
