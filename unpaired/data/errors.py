"""The exception type the data layer raises for problems with the user's files, and its warning type.

Data problems (a missing folder, a corrupt JPEG, a wrong checksum) are things the user has to fix, not bugs,
so they get their own type: the command line prints the message without a traceback. Every message names the
file or folder, says what is wrong with it, and says what to do about it.
"""

from __future__ import annotations

__all__ = ["DataError", "DataWarning"]


class DataError(Exception):
    """A data file or folder is missing, unreadable or malformed; the message says which and what to do."""


class DataWarning(RuntimeWarning):
    """A data problem the run works around (files left out of a domain); the message names the folder or file.
    The command line prints it as one ``warning:`` line."""
