"""Entry point of the dashboard: ``streamlit run dashboard/app.py`` (``rlmine dashboard`` runs it).

The database comes from ``$RLMINE_DB`` (``rlmine dashboard --db PATH`` sets it).
Pages are scripts under ``views/`` wired with ``st.navigation``; every page
links to others by these same paths (see :mod:`dashboard.components`). The
folder is deliberately not called ``pages/``: Streamlit would then treat the app
as a legacy multipage app and serve a deep link such as ``/run_viewer?run=ID``
by running the page file alone, without this entry script.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts this file's folder, not the repository, on sys.path: make
# ``import dashboard`` work from a checkout that is not pip-installed.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import streamlit as st  # noqa: E402

from dashboard import components  # noqa: E402

st.set_page_config(page_title="rlmine dashboard", page_icon=":material/insights:", layout="wide")
navigation = st.navigation(
    [
        st.Page(
            components.OVERVIEW,
            title="Overview",
            icon=":material/dashboard:",
            url_path="home",  # served at the root: the default page's own path is unused
            default=True,
        ),
        # /overview is the Overview too, not a "Page not found" (hidden: no second menu entry).
        st.Page(components.OVERVIEW, title="Overview", url_path="overview", visibility="hidden"),
        st.Page(components.RUNS, title="Runs", icon=":material/table_rows:", url_path="runs"),
        st.Page(
            components.RUN_VIEWER, title="Run viewer", icon=":material/slideshow:", url_path="run_viewer"
        ),
        st.Page(components.COMPARE, title="Compare", icon=":material/compare:", url_path="compare"),
        st.Page(components.TACTICS, title="Tactics", icon=":material/category:", url_path="tactics"),
        st.Page(components.FLOWS, title="Flows", icon=":material/account_tree:", url_path="flows"),
        st.Page(components.AGENTS, title="Agents", icon=":material/smart_toy:", url_path="agents"),
    ]
)
components.sidebar()
navigation.run()
