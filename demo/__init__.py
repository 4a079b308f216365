"""The demo store: simulated history, scale seeding and the embedded server (make run)."""
