"""Member messages written in the same transaction as the change, delivered afterwards."""
