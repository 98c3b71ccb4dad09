"""HTTP routes, one module per area; each maps requests to the ledger and nothing more."""
