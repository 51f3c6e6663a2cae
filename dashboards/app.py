"""The dissensus dashboards: one Streamlit app with st.navigation over thin pages.

Run with `dissensus serve` (or `streamlit run dashboards/app.py -- --db PATH` with dissensus
installed). Optional sign-in: when `.streamlit/secrets.toml` has an `[auth]` section (OIDC),
every visitor must log in.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dissensus.dashboards import data, source

HERE = Path(__file__).resolve().parent


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def _sign_in() -> None:
    if not _auth_configured():
        return
    if not st.user.is_logged_in:
        st.title("dissensus")
        st.write("This dashboard needs a sign-in.")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    st.sidebar.caption(f"Signed in as {st.user.get('email') or st.user.get('name')}")
    st.sidebar.button("Log out", on_click=st.logout)


st.set_page_config(page_title="dissensus", page_icon=":material/balance:", layout="wide")
data.start_preload()
_sign_in()
pages = [
    st.Page(HERE / "views" / "overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page(HERE / "views" / "reviewer_audit.py", title="Reviewer audit", icon=":material/groups:"),
    st.Page(HERE / "views" / "disagreement_explorer.py", title="Disagreement explorer",
            icon=":material/call_split:"),
    st.Page(HERE / "views" / "reward_models.py", title="Reward models",
            icon=":material/model_training:"),
    st.Page(HERE / "views" / "trade_offs.py", title="Trade-offs", icon=":material/balance:"),
    st.Page(HERE / "views" / "deployment_drift.py", title="Deployment drift",
            icon=":material/trending_up:"),
]
nav = st.navigation(pages)
with st.sidebar:
    st.caption(f"Warehouse: `{source.db_path()}` (read-only)")
    st.toggle("Pseudonymise reviewer ids", key="pseudonymise",
              help="Show a stable salted hash instead of each reviewer id.")
    if not _auth_configured():
        st.caption("No sign-in configured: `dissensus serve` binds to 127.0.0.1 (this machine "
                   "only) unless told otherwise.")
nav.run()
