"""The operators' console under ``/console/``: server-rendered French pages for the
insurer's security staff (analysts, the DPO, administrators).

``operators`` holds the framework-free part (accounts, roles, sessions); ``web`` the
glue every page uses (session, permission, CSRF, rendering); a ``routes_*`` module per
group of pages, each a thin layer over the same domain calls as the CLI, and
``install`` mounts them (imported by the app only: the domain part stays light).
"""
