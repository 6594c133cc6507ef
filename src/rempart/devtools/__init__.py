"""Stand-ins for what a professional holds, for the demo and the tests: a software
WebAuthn authenticator and a launcher for a local OpenID Connect provider.

The service never imports this package.
"""
