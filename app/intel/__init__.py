"""Customer intelligence: member stats, lifecycle, RFM, segments, campaigns, journeys."""
