"""The guard: for every lookup, ``allow``, ``step_up`` or ``deny``, before data leaves.

One engine (:class:`~rempart.guard.engine.Guard`) serves both drivers: inline in
the API and offline in ``rempart guard replay`` (:mod:`rempart.guard.replay`). The
engine owns every decision and every change to an account's record, first contact,
restore after a suspension, the trusted history (:meth:`~rempart.guard.engine.Guard.learn`,
which the warm start feeds) and its end included; the drivers only feed events and
act on decisions, so both decide the same lookups identically (shown lookup by lookup
in ``tests/functional/test_guard_one_engine.py``). A decision runs as named phases
(:mod:`rempart.guard.phases`: explanation, velocity, enumeration, conversion,
strangers, cost, rule) over small rules defined once (:mod:`rempart.guard.signals`).
It is causal (a decision uses only the lookups and claims that came before it),
deterministic, and never modifies its input. Thresholds and weights come from
a validated TOML file (:mod:`rempart.guard.config`, ``default.toml``).

What it reads
    :mod:`~rempart.guard.directory`: accounts (profession, department, unit =
    organisation or the account itself), insured persons (birth date,
    department, declared doctor) and care links. :mod:`~rempart.guard.state`:
    what it remembers (per-account record; registries of claims, persons
    already read, networks and devices).

Explained lookups
    A lookup is *explained* when the person has a care link with the account's
    unit, has declared one of the unit's doctors, or was billed by the unit
    before the lookup. Explained lookups, re-reads of a person the account
    already read, and not-found lookups expose no one new and cost nothing.

The exposure budget
    Every lookup of an existing person that is not explained (a *new
    unexplained person*) costs 1, plus a weight per anomaly seen with it: a
    patient living far from the practice (less for accounts used to far
    patients), a network or device the account never vouched for (a network
    becomes known after ``network.known_after`` explained lookups from it, or
    any use in the trusted history), an hour the account hardly ever works, a
    network or device that other unrelated units use (campaign), and a recent
    conversion of unexplained lookups into claims far below the account's own
    (or its peers') rate (attackers never bill).

    Each account has a daily capacity: ``budget.factor`` times its decaying
    high-water mark of unexplained lookups per clean day, plus a margin,
    clamped to [``budget.min``, ``budget.max``]; accounts with little history
    lean on their peer group (profession and department, else profession). The
    day's spending starts from yesterday's overspending (``max(0, spent -
    capacity)``): an attacker who keeps trying after a step-up stays in debt
    for days, while an honest professional's unusual day is forgotten by the
    next. The worst case an account can leak before a step-up is its capacity
    (a few for most accounts; attack lookups cost 3-5 each, so a robot on a
    pharmacy stops after a handful), and after it only explained persons pass.

    Billing gives back: a claim of the account for a person it read today as a
    new unexplained one returns that lookup's cost to the day's budget (the care
    was billed, so the visit was real; a robot never bills). A resort town's
    pharmacy serving tourists, each billed at the counter, keeps its budget.

The rules, most severe first
    * ``deny`` (and suspension until an operator restores the account), always on
      evidence of an attacker: enumeration (many not-found lookups, most of the
      recent ones), a robot (velocity over ``velocity.deny_factor`` times its
      limit with the budget spent), spending ``budget.deny_factor`` times the
      capacity in a day *with* an attacker's trace (machine speed, a network or
      device new to the account, enumeration starting, a stranger, a campaign:
      volume alone from the account's usual place and devices, an unusual but
      human day, is stepped up and never suspended), or a refused stranger that
      keeps trying (``stranger_persisting``, its ``concurrency.deny_after``-th
      refused lookup: it knows the credentials); a suspended account is denied
      everything.
    * ``step_up``: enumeration starting; velocity over the limit at any scale
      (limit: the floor, or ``velocity.peak_factor`` times the account's learnt
      peak), except for an explained lookup from the account's known network and
      device (practice software checking the day's appointments), stepped up only
      beyond ``velocity.home_pace`` times the shortest scale's limit; a session
      used from a network the account never used; a network and device refused
      earlier (``refused_network``); a *stranger* (a network
      new to the account, or first seen less than ``concurrency.probation``
      ago) used while another network of the account was used within
      ``concurrency.window`` (``concurrent_new_network``: a personal account in
      two places at once; at once with a new device, else from the
      ``concurrency.min_lookups``-th such lookup) or at the account's off
      hours (``stranger_off_hours``, from the ``min_lookups``-th); then,
      for new unexplained persons and not-found lookups only: the account was
      already challenged today, a campaign seen by ``campaign.step_up_units``
      units, or the budget would overflow.
    * otherwise ``allow``, with the anomalies as reason codes.

    After a step-up the account is *challenged* until the day ends: the
    legitimate user passes the step-up and goes on with their own patients
    (explained lookups pass), an attacker cannot pass it and gets nothing new.
    A stranger is answered where it comes from instead: that network and
    device stay refused for ``concurrency.refuse_for``, explained lookups
    included (a slow scraper reading the practice's own patients from home, a
    night-time reader of the practice's patients, get nothing more), while the
    owner at the practice is not challenged and the stranger's refused
    lookups spend nothing of the owner's budget. Probation matters because
    explained lookups make a network known: a robot that starts before the
    practice opens is still a stranger when the practice shows up.

Learning
    Lookups before ``history_until`` are trusted: they teach baselines (hours,
    far share, velocity peaks, daily unexplained volume, conversion rate,
    networks and devices) without spending budget. Afterwards a day teaches the
    daily baselines only if nothing in it was judged suspicious, networks become
    known only through explained lookups, and hours and far shares learn only
    from allowed lookups. Peer baselines are computed at the end of history, and
    on each new day of a young deployment (its first ``learning.min_days`` days:
    one without history gets peers from its first days).

    First contact (``network.first_contact``): an account the engine has never
    seen has no network or device to compare with; its first lookup's become its
    baseline, as the history's do, and novelty weighs from the next one on.

Practice software
    A lookup through an API client (practice software acting for a professional
    of its organisation) is decided twice by the same engine, on the same event:
    against the professional's record and against the client's own record,
    ``client/<client_id>``. That record is an ordinary account record to the
    engine: its unit is the organisation (so the organisation's care links,
    declared doctors and claims explain its lookups), its peer group the
    organisation's most common profession and department, and it has its own
    first contact, budget, velocity, enumeration counters, networks and devices,
    challenge and suspension. The stricter decision wins, with the reasons of both
    (the client's prefixed ``client:``). So the persons a client reads beyond
    what explains them are bounded by *one* budget however many professionals it
    names in turn, and its step-ups count on its record: rotating professionals
    resets nothing (the record stays challenged for the day, its spending keeps
    growing towards the deny).

    The professional's record is decided with ``answered_by_client``: the
    client answers for the lookup's refusals, so a refused lookup spends nothing
    of the professional's budget (the professional's debt stays within one
    capacity, as a stranger's refused lookups are not the owner's) and a deny
    decided on it challenges it for the day instead of suspending it. A deny
    through a client (from either record) suspends the client, never the
    professional it named: one client cannot suspend its organisation. Worlds
    have no clients: the replay never takes this path and decides as before.

The score is the pressure on the account: the largest of budget spent over
capacity, velocity over its limit, and the enumeration ratio; about 1 where
the rules start to act.
"""
