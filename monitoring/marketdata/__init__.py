"""Market data behind one interface; see base.py."""
