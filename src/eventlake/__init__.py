"""eventlake: real-time streaming analytics platform."""

__version__ = "0.1.0"
