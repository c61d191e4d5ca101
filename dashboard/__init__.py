"""The rlmine dashboard: a read-only Streamlit app over the trace database.

``app.py`` is the entry point (``rlmine dashboard`` runs it); the store computes
every page's frames in SQL (:func:`rlmine.store.load_page`, one short read-only
connection per page); ``data`` caches them per session; ``views/`` (the pages)
lay the results out. Nothing here imports ``duckdb`` or writes SQL.
"""
