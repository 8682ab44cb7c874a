"""`make bench`: Herald's benchmark, run against the real multi-process stack.

It starts the production layout (gunicorn API, `dramatiq` publisher and token-refresher,
scheduler) on a scratch PostgreSQL database and its own Redis namespace, with the built-in
`sandbox` platform as a zero-latency platform, and prints from one run:

1. the floor: a no-op Dramatiq actor's throughput with the publisher's settings (`floor.py`);
2. end-to-end publish throughput, due → published, and its ratio to the floor (`publish.py`);
3. a burst of 10,000 targets due at the same second: lateness percentiles (`publish.py`);
4. the scheduler's time per tick with 1,000,000 future posts over its time with none
   (`ticks.py`);
5. `POST /v1/posts` at a fixed open-loop rate against a bare Falcon endpoint under the same
   gunicorn settings (`api.py`, `loadgen.py`, `bare_app.py`).

These are measurements, not tests: nothing here passes or fails on a figure. BENCHMARKS.md
says how each one is taken and records a run.
"""
