"""Everything strangler draws for people with rich: progress, plans, results, reports.

The CLI and the demo import these; the library (everything outside ``cli/``, ``render/`` and
``demo/``) never imports rich, so a program using strangler as a library gets data, not
drawings.
"""
