"""Use cases of the biometric service: :mod:`.selfies` (decide a selfie, keep a participant's NIK,
sweep abandoned uploads) over :mod:`.verification` (what the decision needs to know about the picture)."""
