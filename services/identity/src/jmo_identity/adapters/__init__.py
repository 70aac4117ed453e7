"""What identity keeps besides its log: the pengkinian-data sessions that may ask for contact-change codes."""
