"""The one exception type for a user's mistake: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (config, paths, data). The message says what is wrong and how to fix it."""
