"""Professional accounts and login: passwords, TOTP, bearer tokens, throttling."""
