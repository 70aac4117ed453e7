"""Identity's pure domain: deciders over ``identity-<participant_id>`` streams (no I/O, no clock, no randomness)."""
