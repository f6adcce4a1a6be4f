"""srcompress: turn a trained super-resolution teacher into a small, fast, memory-frugal student."""

__version__ = "0.1.0"
