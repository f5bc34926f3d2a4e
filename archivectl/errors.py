"""The two kinds of failure a user can meet, each with its exit code."""


class ArchiveError(Exception):
    """A refused or failed operation: exit 1, printed as one line."""

    exit_code = 1


class UsageError(ArchiveError):
    """Bad input on the command line or in a file: exit 2, printed as one line."""

    exit_code = 2
