"""Alembic migrations (a package only so that packaging ships env.py with the revisions)."""
