"""Bulk writes as driver SQL: the sync's hot path, without SQLAlchemy's per-row work.

A sync writes about a dozen package rows per project, hundreds of thousands per whole-index
sync. Through SQLAlchemy Core each value passes a bind processor, each row a parameter dict and
``construct_params``: that was a third of a sync's CPU. Here a statement is built once per table,
dialect and chunk length, the values go to the driver as tuples, and only the columns whose type
has a bind processor on this dialect (SQLite's ``DATETIME`` turns a ``datetime`` into the text
SQLAlchemy itself stores) get one: rows read back through the ORM are the same as before.

Two shapes: ``upsert_returning`` (``INSERT ... ON CONFLICT ... RETURNING``, so ids come back
without a second query: on SQLite a multi-row ``VALUES`` per chunk, on PostgreSQL a ``COPY`` into a
temporary table and one ``INSERT ... SELECT``) and ``insert_many`` (executemany of one statement,
``ON CONFLICT DO NOTHING`` optional). Chunks keep a statement far below the 65,535
parameters PostgreSQL allows (and SQLite's 32,766).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

__all__ = ["BulkWriter", "MAX_PARAMETERS", "UPSERT_ROWS"]

#: Parameters per statement at most (PostgreSQL's limit is 65,535; SQLite's 32,766).
MAX_PARAMETERS = 30_000
#: Rows per multi-row upsert at most. Its lengths are powers of two: the drivers cache prepared
#: statements by their text (SQLite's cache holds a 1,000-row statement in about 1.5 MB), so a
#: batch of any size reuses the same nine statements instead of preparing one for its own length.
UPSERT_ROWS = 256

Processor = Callable[[Any], Any]


class BulkWriter:
    """Driver-level bulk statements for one table and one dialect."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        self.table, self.columns, self.dialect = table, tuple(columns), dialect
        unknown = [c for c in self.columns if c not in table.c]
        if unknown:
            raise ValueError(f"table {table.name!r} has no column(s) {unknown!r}")
        self._processors: list[tuple[int, Processor]] = []
        for index, name in enumerate(self.columns):
            column_type = table.c[name].type
            processor = column_type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors.append((index, processor))
        quote = dialect.identifier_preparer.quote
        self._table_sql = quote(table.name)
        self._columns_sql = ", ".join(quote(c) for c in self.columns)
        self._marker = "?" if dialect.paramstyle == "qmark" else "%s"
        self.rows_per_statement = max(1, MAX_PARAMETERS // len(self.columns))
        self._statements: dict[tuple[Any, ...], str] = {}  # a few chunk lengths: see UPSERT_ROWS

    def prepare(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Apply the dialect's bind processors to ``rows`` (tuples in ``columns`` order)."""
        if not self._processors:
            return [tuple(row) for row in rows]
        # One call per distinct object: a batch's rows share their ``created`` time, and upload
        # times are parsed once per spelling. Keyed by identity, so that equal datetimes in other
        # time zones still get their own text; the memo keeps each object alive, so no id is reused.
        memos: list[tuple[int, Processor, dict[int, tuple[Any, Any]]]] = [
            (i, p, {}) for i, p in self._processors
        ]
        prepared = []
        for row in rows:
            values = list(row)
            for index, processor, memo in memos:
                value = values[index]
                if value is not None:
                    hit = memo.get(id(value))
                    if hit is None:
                        hit = memo[id(value)] = (value, processor(value))
                    values[index] = hit[1]
            prepared.append(tuple(values))
        return prepared

    def insert_many(
        self,
        connection: Connection,
        rows: Iterable[Sequence[Any]],
        *,
        on_conflict_do_nothing: bool = False,
        replace_on: Sequence[str] = (),
    ) -> None:
        """executemany of one ``INSERT`` (rows in ``columns`` order).

        ``on_conflict_do_nothing`` keeps existing rows; ``replace_on`` (the conflict's columns)
        overwrites every other column of an existing row with the new values instead.
        """
        prepared = self.prepare(rows)
        if not prepared:
            return
        sql = self._insert_sql(1)
        if on_conflict_do_nothing:
            sql += " ON CONFLICT DO NOTHING"
        elif replace_on:
            quote = self.dialect.identifier_preparer.quote
            sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in self.columns if c not in replace_on)
            sql += f" ON CONFLICT ({', '.join(quote(c) for c in replace_on)}) DO UPDATE SET {sets}"
        connection.exec_driver_sql(sql, prepared)  # one row's parameters per execution: no limit to mind

    def upsert_returning(
        self,
        connection: Connection,
        rows: Sequence[Sequence[Any]],
        *,
        conflict: Sequence[str],
        update: dict[str, str],
        returning: Sequence[str],
    ) -> list[tuple[Any, ...]]:
        """``INSERT ... ON CONFLICT (conflict) DO UPDATE SET ... RETURNING returning``, chunked.

        ``update`` maps a column to the *inserted row's* column that sets it (``excluded.<name>``).
        Rows must be unique on ``conflict`` (PostgreSQL refuses to update a row twice in one
        statement). Returns one tuple per row, inserted or updated, in no particular order.
        """
        prepared = self.prepare(rows)
        if not prepared:
            return []
        if self.dialect.name == "postgresql":
            return self._copy_upsert(
                connection, prepared, tuple(conflict), tuple(update.items()), tuple(returning)
            )
        found: list[tuple[Any, ...]] = []
        start = 0
        for length in _chunk_lengths(len(prepared), min(UPSERT_ROWS, self.rows_per_statement)):
            chunk = prepared[start : start + length]
            start += length
            sql = self._upsert_sql(length, tuple(conflict), tuple(update.items()), tuple(returning))
            flat = tuple(chain.from_iterable(chunk))
            found.extend(tuple(row) for row in connection.exec_driver_sql(sql, flat))
        return found

    def _copy_upsert(
        self,
        connection: Connection,
        rows: list[tuple[Any, ...]],
        conflict: tuple[str, ...],
        update: tuple[tuple[str, str], ...],
        returning: tuple[str, ...],
    ) -> list[tuple[Any, ...]]:
        """PostgreSQL: ``COPY`` the rows into a temporary table, then one ``INSERT ... SELECT``.

        A multi-row ``VALUES`` is slow here: psycopg re-parses a statement of thousands of
        placeholders on every call (its query cache keeps short statements only). COPY has no
        parameter limit either, so the whole batch is one statement. The temporary table lives in
        this connection's session and empties at commit (``ON COMMIT DELETE ROWS``).
        """
        quote = self.dialect.identifier_preparer.quote
        staging = quote(f"mirrorflow_bulk_{self.table.name}")
        sets = ", ".join(f"{quote(column)} = excluded.{quote(source)}" for column, source in update)
        driver = connection.connection.driver_connection
        if driver is None:  # the pooled connection was invalidated mid-transaction
            raise RuntimeError(f"bulk write to {self.table.name!r}: the database connection is closed")
        with driver.cursor() as cursor:
            # IF NOT EXISTS each time: a table made in a transaction that rolled back is gone again.
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
                f"SELECT {self._columns_sql} FROM {self._table_sql} WITH NO DATA"
            )
            cursor.execute(f"DELETE FROM {staging}")  # an earlier call in this same transaction
            with cursor.copy(f"COPY {staging} ({self._columns_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {self._table_sql} ({self._columns_sql}) "
                f"SELECT {self._columns_sql} FROM {staging} "
                f"ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO UPDATE SET {sets} "
                f"RETURNING {', '.join(quote(c) for c in returning)}"
            )
            return [tuple(row) for row in cursor.fetchall()]

    def _insert_sql(self, rows: int) -> str:
        row = "(" + ", ".join([self._marker] * len(self.columns)) + ")"
        return f"INSERT INTO {self._table_sql} ({self._columns_sql}) VALUES " + ", ".join([row] * rows)

    def _upsert_sql(
        self,
        rows: int,
        conflict: tuple[str, ...],
        update: tuple[tuple[str, str], ...],
        returning: tuple[str, ...],
    ) -> str:
        key = (rows, conflict, update, returning)
        sql = self._statements.get(key)
        if sql is None:
            quote = self.dialect.identifier_preparer.quote
            sets = ", ".join(f"{quote(column)} = excluded.{quote(source)}" for column, source in update)
            sql = self._statements[key] = (
                f"{self._insert_sql(rows)} ON CONFLICT ({', '.join(quote(c) for c in conflict)}) "
                f"DO UPDATE SET {sets} RETURNING {', '.join(quote(c) for c in returning)}"
            )
        return sql


def _chunk_lengths(total: int, largest: int) -> list[int]:
    """Split ``total`` rows into statements of ``largest`` rows, then powers of two (largest first)."""
    lengths = [largest] * (total // largest)
    rest = total % largest
    power = 1 << max(rest.bit_length() - 1, 0)
    while rest:
        if rest >= power:
            lengths.append(power)
            rest -= power
        power >>= 1
    return lengths
