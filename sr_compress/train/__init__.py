"""Training: losses, strategies, presets and the one trainer (data and degradations live in sr_compress.data)."""
