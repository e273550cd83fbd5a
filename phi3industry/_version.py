"""The package's version, in one place (``phi3industry.__version__``, the CLI, the server)."""

__version__ = "0.1.0"
