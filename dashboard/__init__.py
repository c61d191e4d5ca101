"""The rlmine dashboard: a read-only Streamlit app over the trace database.

``app.py`` is the entry point (``rlmine dashboard`` runs it); ``queries`` and
``run_queries`` compute everything in SQL; ``data`` loads a page's frames under
one short read-only connection; ``views/`` (the pages) lay the results out.
"""
