"""pytest plugin for smtpmock (registered through the ``pytest11`` entry point).

The fixtures are being written under issue 3; this module must exist for the entry point.
"""
