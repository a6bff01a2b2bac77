"""Cross-table consistency checks: ``flask audit`` (ledger, coupons, identities, POS)."""
