"""The command line: the Typer root (``main``) and the sub-apps that are no role's.

Owns the root app composing every role's sub-app (``main``), ``store``, ``data``, ``chain`` and
``api``, the demo (``demo``), the one-line-error decorator (``errors``) and the progress bars
(``progress``).

The root and the demo may import everything (they compose the roles); ``errors`` and
``progress`` import nothing of the project, so the roles' own CLIs can use them.
"""
