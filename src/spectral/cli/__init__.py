"""The thin command-line layer: parse, call the library, render. Exit codes are mapped in main."""
