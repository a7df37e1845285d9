"""The state sync engine: one object of one district into the state, in one transaction."""
