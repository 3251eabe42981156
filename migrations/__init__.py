"""The ordered SQL migrations, applied by `telemed migrate` (telemed/migrate.py).

A package only so that the files travel inside the built wheel (package data) and are found
in the installed package, not in a source tree (telemed.resources).
"""
