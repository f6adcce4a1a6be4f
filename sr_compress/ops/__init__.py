"""The operations layer: one typed function per user-visible operation (one module each).

An operation checks its output paths, loads its inputs, calls the pure stage (``compress``, ``train``,
``deploy``), saves atomically and returns a typed outcome (a dataclass). The CLI commands (``sr_compress.cli``)
parse, call one operation and render its outcome; the recipe stages (``sr_compress.recipes.stages``) adapt a
recipe's data to the same operation. Defaults live in the stage function's signature (read with
:func:`sr_compress.config.defaults_of`) or the operation's own, never in the CLI or the recipe adapter.

Kept free of imports: each module imports only what its operation needs.
"""
