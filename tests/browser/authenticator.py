"""A virtual WebAuthn authenticator in Chromium, through the DevTools protocol.

The portal's script calls ``navigator.credentials`` as it would with a USB key; Chromium
answers from this authenticator instead of the user's hardware: a real browser ceremony
(the browser checks the RP ID against the page's origin, builds the client data, signs
with the key it created), with only the touch simulated. It holds discoverable
credentials and verifies its user (a PIN or a fingerprint, deemed given), as a FIDO2 key
or a passkey does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playwright.sync_api import CDPSession, Page

__all__ = ["VirtualKey", "plug_in"]


@dataclass(frozen=True)
class VirtualKey:
    """A key plugged into one page (one browser tab): it answers that page's ceremonies,
    across navigations and origins."""

    cdp: CDPSession
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        """The credentials the key holds (``rpId``, ``isResidentCredential``, ``signCount``…)."""
        answer = self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id}
        )
        found: list[dict[str, Any]] = answer["credentials"]
        return found

    def unplug(self) -> None:
        self.cdp.send(
            "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator_id}
        )


def plug_in(page: Page) -> VirtualKey:
    """A FIDO2 security key (CTAP2, USB, resident keys, user verification) on ``page``;
    presence is simulated, so no ceremony waits for a touch."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return VirtualKey(cdp, str(added["authenticatorId"]))
