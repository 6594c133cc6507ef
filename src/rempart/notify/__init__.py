"""Notifications: mail senders, the transactional outbox and the French e-mail templates.

Domain code, free of the web framework. A notification is written to the outbox in
the transaction of the change it reports (it exists if and only if that change
committed) and delivered afterwards through a :class:`~rempart.notify.mail.MailSender`.
"""

from rempart.notify.mail import (
    DirectorySender,
    MailDeliveryError,
    MailSender,
    SmtpSender,
    compose_message,
    sender_from_settings,
)
from rempart.notify.outbox import DeliveryReport, Outbox
from rempart.notify.render import KINDS, MailRenderer, MailTemplateError, RenderedMail

__all__ = [
    "KINDS",
    "DeliveryReport",
    "DirectorySender",
    "MailDeliveryError",
    "MailRenderer",
    "MailSender",
    "MailTemplateError",
    "Outbox",
    "RenderedMail",
    "SmtpSender",
    "compose_message",
    "sender_from_settings",
]
