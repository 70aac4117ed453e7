"""Use cases of the profile-update service (:mod:`.sessions`)."""
