"""deploykit's version, on the ground floor so every module can name it without importing the public API."""

__version__ = "0.1.0"
