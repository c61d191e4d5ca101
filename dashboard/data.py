"""Loading a page's data for the current session: the store's page loaders, results cached briefly.

The frames come from the store (:func:`rlmine.store.load_page`: one short
read-only connection per page; the dashboard holds no SQL and no connection).
Results are cached for :data:`CACHE_TTL_S` seconds (keyed by database, page,
arguments and a refresh counter that the Refresh button bumps), so reruns and
several open tabs cost the writer nothing, and new runs show up within seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from rlmine.config import resolve_db_path
from rlmine.store import PageData, PageState, load_page

CACHE_TTL_S = 3.0
NONCE_KEY = "rlmine_refresh_nonce"

# Database states a page can be asked to show.
MISSING, UNINITIALIZED, TOO_NEW, READY = (
    PageState.MISSING,
    PageState.UNINITIALIZED,
    PageState.TOO_NEW,
    PageState.READY,
)

__all__ = [
    "CACHE_TTL_S",
    "MISSING",
    "READY",
    "TOO_NEW",
    "UNINITIALIZED",
    "PageData",
    "db_path",
    "fetch",
    "load_page",
    "refresh",
]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=64)
def _cached_load(db: str, page: str, args: tuple[Any, ...], nonce: int) -> PageData:
    del nonce  # part of the cache key only: bumping it forces a fresh read
    return load_page(Path(db), page, args)


def db_path() -> Path:
    """The database to show: ``$RLMINE_DB`` (set by ``rlmine dashboard --db``) or the default."""
    return resolve_db_path(None).resolve()


def refresh() -> None:
    """Make the next :func:`fetch` of this session read the database again."""
    st.session_state[NONCE_KEY] = int(st.session_state.get(NONCE_KEY, 0)) + 1


def fetch(page: str, *args: Any) -> PageData:
    """``page``'s data for the current session: cached for a few seconds, fresh after :func:`refresh`."""
    nonce = int(st.session_state.get(NONCE_KEY, 0))
    result: PageData = _cached_load(str(db_path()), page, tuple(args), nonce)
    return result
