"""``python -m sr_compress`` is the ``srcompress`` command."""

from .cli import main

if __name__ == "__main__":
    main()
