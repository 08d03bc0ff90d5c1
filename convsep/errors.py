"""The one exception type that reaches the user as a one-line message."""


class ConvSepError(Exception):
    """A problem with the user's input, files or settings.

    The CLI prints ``error: <message>`` and exits with status 2; it never shows a traceback
    for this type. The message must be one line and say what to do.
    """
