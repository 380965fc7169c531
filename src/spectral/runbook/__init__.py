"""The team's runbook: the file it keeps beside its configuration (model.py, load.py), the
neutral texts used without one, and the page `spectral dr runbook render` writes from it, the
configuration and the ledger (render.py)."""
