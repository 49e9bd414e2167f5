__version__ = "0.1.0"
"""The version of instax-async (``instax --version`` prints it too)."""
