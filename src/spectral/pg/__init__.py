"""PostgreSQL engine layer: binaries, the unprivileged server user, clusters, connections."""
