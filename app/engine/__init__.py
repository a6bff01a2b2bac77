"""The money engine: one journal of money events and one applier for all of them."""
