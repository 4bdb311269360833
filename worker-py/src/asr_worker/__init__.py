"""LAN speech-to-text worker: Procrastinate tasks, ASR engines and audio I/O."""

__all__ = ["__version__"]

__version__ = "0.1.0"
