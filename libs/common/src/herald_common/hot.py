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
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
    """What a statement gave: its rows and how many rows it touched."""

    def __init__(self, rows: list[Any], keys: tuple[str, ...], rowcount: int) -> None:
        self._rows = rows
        self._keys = keys
        self.rowcount = rowcount

    def _row(self, values: Sequence[Any]) -> HotRow:
        row = HotRow(values)
        row.keys = self._keys
        return row

    def first(self) -> HotRow | None:
        return self._row(self._rows[0]) if self._rows else None

    def one(self) -> HotRow:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._row(self._rows[0])

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


class HotConnection:
    """One transaction's statements on psycopg (see the module's docstring)."""

    def __init__(self, connection: psycopg.Connection[Any], dialect: Dialect) -> None:
        self._connection = connection
        self.dialect = dialect

    def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> HotResult:
        compiled = _compile(statement, self.dialect)
        for hook in statement_hooks:
            hook(compiled.sql)
        with self._connection.cursor() as cursor:
            cursor.execute(compiled.sql, {**compiled.defaults, **(params or {})})
            result = cursor.pgresult
            returned = result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK
            rows = cursor.fetchall() if returned else []
        return HotResult(rows, compiled.keys, cursor.rowcount)


class Rollback(Exception):
    """Raised inside `Hot.transaction()` to roll it back; the block then ends quietly."""


class Hot:
    """Transactions for the hot statements of one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.direct = engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[HotConnection | Connection]:
        """A transaction that commits on success and rolls back on error; raising Rollback
        in it rolls it back and ends the block."""
        try:
            with self._transaction() as connection:
                yield connection
        except Rollback:
            pass

    @contextmanager
    def _transaction(self) -> Iterator[HotConnection | Connection]:
        if not self.direct:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._borrowed() as driver:
            hot = HotConnection(driver, self.engine.dialect)
            try:
                yield hot
            except BaseException:
                _end(driver.rollback, "ROLLBACK")
                raise
            _end(driver.commit, "COMMIT")

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


def _end(how: Callable[[], None], name: str) -> None:
    for hook in statement_hooks:
        hook(name)
    how()


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
