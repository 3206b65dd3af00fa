"""radai: an open platform for AI in medical imaging."""

__version__ = "0.1.0"
