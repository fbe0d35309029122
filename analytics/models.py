"""No tables yet: analytics reads trades and snapshots (issue 7 adds what it needs)."""
