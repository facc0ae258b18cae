"""The one exception type the data layer raises for problems with the user's files.

Data problems (a missing folder, a corrupt JPEG, a wrong checksum) are things the user has to fix, not bugs,
so they get their own type: the command line prints the message without a traceback. Every message names the
file or folder, says what is wrong with it, and says what to do about it.
"""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(Exception):
    """A data file or folder is missing, unreadable or malformed; the message says which and what to do."""
