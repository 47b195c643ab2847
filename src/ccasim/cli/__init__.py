"""The ``ccasim`` command."""
