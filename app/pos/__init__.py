"""POS sales, returns (parked until their sale arrives), redemptions and terminal lifecycle."""
