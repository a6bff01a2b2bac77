"""The clerk tablet app: sessions, lookups with time-limited grants, notes, access log,
attribution of new members."""
