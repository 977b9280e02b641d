"""Database leases: a role (say, driving the deployment lifecycle) held by exactly
one process at a time, however many API replicas share the database.

A lease is a row: its holder and an expiry. The holder renews it well before it
expires; anyone may take it once it has expired, so when the holder dies another
process takes over within one lease period. Taking and renewing are one
conditional UPDATE (or the INSERT of the first row), which the database
serialises: on PostgreSQL a second writer waits for the first and re-checks
the condition against the row as committed, on SQLite writers take turns.

Expiry compares this host's clock with the one that wrote the row, so replicas'
clocks must agree to well within the lease period (NTP does).
"""

from __future__ import annotations

import time

from sqlalchemy import case, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneyard.tables import Lease


def acquire(engine, *, name: str, holder: str, seconds: float,
            dead_holder: str | None = None) -> bool:
    """Take or renew lease `name` for `holder` for `seconds`; True when held now.

    `dead_holder`: a holder known to be dead (a process of this host that no
    longer exists), whose lease is taken at once instead of after it expires.
    """
    now = time.time()
    takeable = or_(Lease.holder == holder, Lease.expires_at < now)
    if dead_holder is not None:
        takeable = or_(takeable, Lease.holder == dead_holder)
    with Session(engine) as session:
        taken = session.execute(
            update(Lease).where(Lease.name == name, takeable)
            .values(holder=holder, expires_at=now + seconds,
                    acquired_at=case((Lease.holder == holder, Lease.acquired_at), else_=now))
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken:
            session.commit()
            return True
        session.rollback()
        if session.get(Lease, name) is not None:
            return False  # someone else holds it
        session.add(Lease(name=name, holder=holder, expires_at=now + seconds, acquired_at=now))
        try:
            session.commit()
        except IntegrityError:  # another process inserted it first
            session.rollback()
            return False
        return True


def release(engine, *, name: str, holder: str) -> None:
    """Give the lease up (on a clean shutdown), so a successor need not wait for it."""
    with Session(engine) as session:
        session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
                        .values(expires_at=0.0).execution_options(synchronize_session=False))
        session.commit()


def last_holder(engine, name: str) -> str | None:
    """Who held the lease last, expired or not (None: nobody ever did)."""
    with Session(engine) as session:
        row = session.get(Lease, name)
        return row.holder if row is not None else None


def holder_of(engine, name: str) -> str | None:
    """Who holds the lease now (None: nobody, or it has expired)."""
    with Session(engine) as session:
        row = session.get(Lease, name)
        return row.holder if row is not None and row.expires_at >= time.time() else None
