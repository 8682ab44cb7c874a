"""psycopg's waits on gevent's loop (herald_common.greenwait): installed only where gevent
patched the process, and queries from many greenlets at once all get their own answers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from herald_common import greenwait

SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import sys

    import gevent
    import psycopg
    from psycopg import waiting

    from herald_common import greenwait

    assert greenwait.use_on_gevent()
    assert waiting.wait is greenwait.wait


    def work(n):
        with psycopg.connect(sys.argv[1]) as conn:
            for i in range(30):
                # pg_sleep makes every greenlet wait on its socket while the others run
                row = conn.execute("SELECT %s::int, pg_sleep(0.002)", (n * 100 + i,)).fetchone()
                assert row[0] == n * 100 + i, row
            with conn.pipeline() as pipeline:
                cursors = [conn.execute("SELECT %s::int", (k,)) for k in range(20)]
                pipeline.sync()
                assert [c.fetchone()[0] for c in cursors] == list(range(20))
        return n


    done = gevent.joinall([gevent.spawn(work, n) for n in range(20)], raise_error=True)
    print(sorted(g.value for g in done) == list(range(20)))
    """
)


@pytest.mark.postgres
def test_many_greenlets_each_get_their_own_answers(pg_url):
    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True"


def test_without_gevent_psycopg_keeps_its_own_wait():
    from psycopg import waiting

    assert greenwait.use_on_gevent() is False
    assert waiting.wait is not greenwait.wait
