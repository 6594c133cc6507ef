"""Claims (care billed) from the billing system, fed to the live guard.

Why the guard needs them. A claim says that a professional billed care for a person:
the visit happened. To the guard it is evidence two ways:

* **explanation**: a lookup of a person the professional's practice has billed before
  is explained, as a care link or being the declared doctor explain it; it costs
  nothing against the account's daily budget of unexplained persons (a pharmacy in a
  resort town sees many far-away patients, each then billed at the counter);
* **conversion**: an honest practice's lookups turn into claims within hours or
  days, a robot's never do. Attackers never bill: an account whose reads stop
  converting drifts away from its own past.

Without a feed, the service's guard sees no claim: every out-of-town patient stays
unexplained and the conversion signal never fires. Two feeds, both idempotent by
``claim_id``, both landing in the ``claims`` table:

* batches: ``rempart claims ingest FILE`` (Parquet or CSV, :mod:`.ingest`), followed by
  each server (:mod:`.follower`, every ``REMPART_CLAIMS_POLL_SECONDS``);
* a stream: a RabbitMQ queue (:mod:`.consumer`, ``REMPART_CLAIMS_AMQP_URL``),
  acknowledged once the table and the guard both have the claim.
"""

from rempart.claims.records import ClaimCode, ClaimProblem, ClaimRecord, claim_key

__all__ = ["ClaimCode", "ClaimProblem", "ClaimRecord", "claim_key"]
