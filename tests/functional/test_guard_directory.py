"""The guard's database directory: the person's facts cached, and only what is cached kept."""

from __future__ import annotations

from rempart.guard.db_directory import DatabaseDirectory
from rempart.rights.lookup import read_person
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import Person


def test_a_person_read_again_and_again_keeps_one_set_of_care_links(
    services: Services, people: list[Person]
) -> None:
    """Every lookup hands the directory the person's rows; entries that expire are
    replaced. The care links of a replaced entry go with it: memory follows the cache,
    not the number of lookups."""
    for ttl in (300.0, 0.0):  # cached; expired at every lookup
        directory = DatabaseDirectory(services.sessions, ttl_seconds=ttl)
        with session_scope(services.sessions) as session:
            for _ in range(50):
                for person in people:
                    read = read_person(session, person.nir)
                    found = directory.prefetch(session, "dr-martin", person.nir.value, read=read)
                    assert found is not None
        # One care-link set per person cached, however many lookups.
        assert len(directory._care) == len(people), ttl


def test_a_cached_person_is_not_rebuilt_from_each_lookups_rows(
    services: Services, people: list[Person]
) -> None:
    directory = DatabaseDirectory(services.sessions)
    with session_scope(services.sessions) as session:
        first = directory.prefetch(
            session, "dr-martin", people[0].nir.value, read=read_person(session, people[0].nir)
        )
        again = directory.prefetch(
            session, "dr-martin", people[0].nir.value, read=read_person(session, people[0].nir)
        )
    assert first is again
