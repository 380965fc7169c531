"""Partner rule corpora: exported to data/rules/<partner>/, regenerable, re-exported on mutation."""
