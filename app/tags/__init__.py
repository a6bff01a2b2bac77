"""The tag catalog HQ manages, the tags members carry, their history, and SKU tag rules."""
