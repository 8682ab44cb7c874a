"""The publish path's statements, run with as little as possible between Herald and the driver.

Every publish message runs a handful of statements, each written once with SQLAlchemy Core.
Executing one through SQLAlchemy costs about as much CPU again as the driver itself (statement
cache lookup, execution context, result metadata built from the cursor's description, event
dispatch), and so does its connection handling around each transaction. On PostgreSQL these
statements are therefore compiled once by SQLAlchemy and sent straight to psycopg on a
connection borrowed from the engine's pool (so its pool size, recycling and idle ping still
apply); rows come back as plain tuples with their keys taken from the statement. Elsewhere
(SQLite) they go through SQLAlchemy as any other statement.

What is bound is passed to psycopg as it is: strings (enums included), numbers, booleans, None
and timezone-aware datetimes, which it adapts natively; a hot statement takes nothing else.
`timestamptz` columns come back aware (in the session's time zone), JSON ones decoded.

A transaction is one round trip. Its statements are queued in psycopg's pipeline mode, between
a BEGIN and a COMMIT of Herald's own (the connection is in autocommit while it is borrowed, so
psycopg adds no BEGIN of its own, which would cost a round trip), and go out together when the
block ends. What a statement returned is read when it is first asked for: after the block, at
no cost; inside it, by sending what is queued so far (a second round trip, for a statement
whose answer decides the next one). A statement that fails aborts the transaction: nothing of
it is written, and the error is raised when the block ends (or when a result is read).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.sql import Executable

#: Compiled statements kept per process (each holds its statement, so an id is never reused
#: while it is cached).
_CACHE_SIZE = 256

#: Called with each statement's SQL before it is sent, and with "COMMIT" or "ROLLBACK" as a
#: transaction ends (the benchmark counts them).
statement_hooks: list[Callable[[str], None]] = []


@dataclass(frozen=True, slots=True)
class _Compiled:
    statement: Executable
    sql: str
    defaults: Mapping[str, Any]
    keys: tuple[str, ...]


class HotRow(tuple[Any, ...]):
    """A row: a tuple that also reads by column key, like SQLAlchemy's."""

    keys: tuple[str, ...] = ()

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self.keys, self, strict=False))


class HotResult:
    """What a statement gave: its rows and how many rows it touched, read when first asked for
    (on PostgreSQL the statement may still be queued in the transaction's pipeline)."""

    def __init__(
        self,
        keys: tuple[str, ...],
        *,
        cursor: psycopg.Cursor[Any] | None = None,
        pipeline: psycopg.Pipeline | None = None,
        rows: list[Any] | None = None,
        rowcount: int = -1,
    ) -> None:
        self._keys = keys
        self._cursor = cursor
        self._pipeline = pipeline
        self._rows = rows
        self._rowcount = rowcount

    def _read(self) -> list[Any]:
        if self._rows is None:
            cursor = self._cursor
            assert cursor is not None
            if cursor.pgresult is None and self._pipeline is not None:
                self._pipeline.sync()  # still queued: send it (and what came before)
            result = cursor.pgresult
            returned = result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK
            self._rows = cursor.fetchall() if returned else []
            self._rowcount = cursor.rowcount
            cursor.close()
            self._cursor = self._pipeline = None
        return self._rows

    @property
    def rowcount(self) -> int:
        self._read()
        return self._rowcount

    def _row(self, values: Sequence[Any]) -> HotRow:
        row = HotRow(values)
        row.keys = self._keys
        return row

    def first(self) -> HotRow | None:
        rows = self._read()
        return self._row(rows[0]) if rows else None

    def one(self) -> HotRow:
        rows = self._read()
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return self._row(rows[0])

    def scalar(self) -> Any:
        rows = self._read()
        return rows[0][0] if rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._read()]


class HotConnection:
    """One transaction's statements on psycopg (see the module's docstring)."""

    def __init__(
        self, connection: psycopg.Connection[Any], pipeline: psycopg.Pipeline, dialect: Dialect
    ) -> None:
        self._connection = connection
        self._pipeline = pipeline
        self.dialect = dialect

    def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> HotResult:
        """Queue the statement; its result is read when asked for."""
        compiled = _compile(statement, self.dialect)
        for hook in statement_hooks:
            hook(compiled.sql)
        cursor = self._connection.cursor()
        cursor.execute(compiled.sql, {**compiled.defaults, **(params or {})})
        return HotResult(compiled.keys, cursor=cursor, pipeline=self._pipeline)

    def _command(self, sql: str) -> None:
        self._connection.execute(sql.encode())  # type: ignore[call-overload]


class BufferedConnection:
    """A transaction's statements through SQLAlchemy (SQLite), with the results kept, so that
    they read the same as a HotConnection's, inside the block or after it."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect

    def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> HotResult:
        result = self._connection.execute(statement, dict(params or {}))
        keys = tuple(result.keys()) if result.returns_rows else ()
        rows = [tuple(row) for row in result] if result.returns_rows else []
        return HotResult(keys, rows=rows, rowcount=result.rowcount)


class Rollback(Exception):
    """Raised inside `Hot.transaction()` to roll it back; the block then ends quietly."""


class Hot:
    """Transactions for the hot statements of one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.direct = engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[HotConnection | BufferedConnection]:
        """A transaction that commits on success and rolls back on error; raising Rollback
        in it rolls it back and ends the block."""
        try:
            with self._transaction() as connection:
                yield connection
        except Rollback:
            pass

    @contextmanager
    def _transaction(self) -> Iterator[HotConnection | BufferedConnection]:
        if not self.direct:
            with self.engine.begin() as connection:
                yield BufferedConnection(connection)
            return
        with self._borrowed() as driver:
            driver.autocommit = True  # BEGIN and COMMIT are sent with the statements
            try:
                with driver.pipeline() as pipeline:
                    hot = HotConnection(driver, pipeline, self.engine.dialect)
                    hot._command("BEGIN")
                    try:
                        yield hot
                    except BaseException:
                        # (a pipeline a statement aborted may refuse it: rolled back below)
                        with suppress(psycopg.Error):
                            _end(hot, "ROLLBACK")
                        raise
                    _end(hot, "COMMIT")
                # Leaving the pipeline sent what was queued and read every answer.
            except BaseException:
                if not driver.closed and driver.info.transaction_status != _IDLE:
                    # A statement failed and the block is aborted: psycopg's own rollback also
                    # forgets statements it prepared in it.
                    driver.rollback()
                raise
            finally:
                if not driver.closed:
                    driver.autocommit = False

    @contextmanager
    def _borrowed(self) -> Iterator[psycopg.Connection[Any]]:
        """A psycopg connection from the engine's pool, given back (or, broken, thrown away)."""
        fairy = self.engine.raw_connection()
        try:
            yield fairy.driver_connection  # type: ignore[misc]
        except psycopg.OperationalError:
            # The connection broke (a server restart, a network cut): never pooled again.
            fairy.invalidate()
            raise
        finally:
            fairy.close()


_IDLE = psycopg.pq.TransactionStatus.IDLE


def _end(hot: HotConnection, name: str) -> None:
    for hook in statement_hooks:
        hook(name)
    hot._command(name)


_cache: OrderedDict[int, _Compiled] = OrderedDict()
_lock = threading.Lock()


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    key = id(statement)
    with _lock:
        found = _cache.get(key)
        if found is not None and found.statement is statement:
            _cache.move_to_end(key)
            return found
    compiled = statement.compile(dialect=dialect)
    sql = str(compiled)
    if "POSTCOMPILE" in sql:
        raise ValueError("a hot statement cannot expand parameters (IN with a list)")
    columns = getattr(statement, "exported_columns", None)
    keys = tuple(columns.keys()) if columns is not None else ()
    made = _Compiled(statement, sql, dict(compiled.params), keys)
    with _lock:
        _cache[key] = made
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return made
