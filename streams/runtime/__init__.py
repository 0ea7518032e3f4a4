"""The engine's adapter, shared by the worker and ``replay``: ``pipeline`` feeds events to the pure
core (``graph/``) and hands what it emits to the sinks; ``changes`` is the stage A → stage B record
format; ``verdicts`` and ``pseudonyms`` apply analysts' verdicts and rename identifiers; ``keys``
loads and checks the keys both use; ``allocator`` returns freed memory to the OS."""
