"""Streamlit dashboards (read-only over the warehouse)."""
