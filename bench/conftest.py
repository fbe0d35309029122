"""Benchmarks that need the database run under pytest for its database set-up (the schema owner
creates a throwaway database; the code runs as the app role, under row-level security, exactly as
in production). They print numbers; they assert behaviour, never timings. Run: `make bench`."""
