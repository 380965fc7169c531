"""How a table's content is checksummed and what became of it: names a fingerprint document
records, without the scanner (psycopg) that produces them, so reading a stored fingerprint or
a ledger entry loads no database driver."""

from __future__ import annotations

from enum import StrEnum


class Method(StrEnum):
    COUNT = "count"                 # exact count only
    COLUMN_HASH = "column-hash-2"   # per row: xor of each column's own extended hash, seeded by
                                    # its position; per table: the sum over rows. "-2": version 1
                                    # cast char(n) and bit(n) columns to char(1)/bit(1) first, so
                                    # its checksums are not comparable (could-not-verify, not a
                                    # false match or mismatch)
    RECORD_HASH = "record-hash"     # sum(hash_record_extended(row, 0)): ~2x slower, kept for
                                    # comparison in the benchmark
    TEXT_HASH = "text-hash"         # sum(hashtextextended(row::text, 0)): the fallback
    FLOOR = "floor"                 # reads every column, hashes nothing: the benchmark floor


class TableStatus(StrEnum):
    OK = "ok"
    COULD_NOT_VERIFY = "could_not_verify"
