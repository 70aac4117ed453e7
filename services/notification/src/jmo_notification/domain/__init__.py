"""What to send for which message: pure decisions, no I/O."""
