"""DuckDB warehouse: schema, lossless ingest, adapters, the demo world and shared queries."""
