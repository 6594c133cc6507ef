"""The message checker: "is this SMS or e-mail really from my health insurer?"

Anyone pastes a message (its text, or a whole ``.eml``) and gets a verdict —
``phishing``, ``suspicious`` or ``genuine-looking`` — with a score and every reason in
plain French, ending with what the genuine channel would be. The rules are data
(``rules.toml``, the insurer updates it without code); the insurer's own breach
notices are recognised by their verification code, checked against the notices sent.

Domain code, free of the web framework: the CLI, the API and the page are thin layers
over :func:`read_message` and :class:`MessageChecker`.
"""

from rempart.messages.checker import MessageChecker
from rempart.messages.model import (
    Channel,
    InvalidMessage,
    Link,
    Message,
    Reason,
    Verdict,
    VerdictLabel,
)
from rempart.messages.notice_code import (
    NoticeCheckUnavailable,
    NoticeCodeCheck,
    database_notice_check,
)
from rempart.messages.parse import read_message
from rempart.messages.rules import InvalidRules, MessageRules, load_rules

__all__ = [
    "Channel",
    "InvalidMessage",
    "InvalidRules",
    "Link",
    "Message",
    "MessageChecker",
    "MessageRules",
    "NoticeCheckUnavailable",
    "NoticeCodeCheck",
    "Reason",
    "Verdict",
    "VerdictLabel",
    "database_notice_check",
    "load_rules",
    "read_message",
]
