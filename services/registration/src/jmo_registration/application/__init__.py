"""Registration's use cases over Protocols, with the clock injected (see ``registrations``)."""
