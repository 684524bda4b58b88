class PTBXLError(ValueError):
    """Bad PTB-XL input. The message names the file or record and the problem."""
