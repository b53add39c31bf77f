"""The one exception type a user of the kit should ever see."""


class KitError(Exception):
    """A problem the user can fix: the message names the file/column/row and the fix.

    The CLI prints these without a traceback and exits with status 2.
    """
